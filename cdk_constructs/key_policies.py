"""Key policy statements shared by the multi-region key and the table's SSE keys.

Key administration is separated from key use: administrators get the management actions
listed here and no cryptographic action, no ``kms:CreateGrant``, no ``kms:ReplicateKey`` and no
``kms:UpdatePrimaryRegion`` (the multi-region key grants those two to the administrators in
statements of their own, limited to the deployment's regions); use is granted in separate
statements with conditions.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam

# Management only: no Encrypt/Decrypt/GenerateDataKey/ReEncrypt, no CreateGrant (which would let an
# administrator grant itself use), no ReplicateKey / UpdatePrimaryRegion (region-scoped statements of
# the multi-region key's own).
ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)


def admin_principals(admin_arns: Sequence[str]) -> list[iam.IPrincipal]:
    """The configured administrators, or the account (delegating to IAM) when none are given."""
    if not admin_arns:
        return [iam.AccountRootPrincipal()]
    return [iam.ArnPrincipal(arn) for arn in admin_arns]


def admin_statement(admin_arns: Sequence[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="KeyAdministration",
        principals=admin_principals(admin_arns),
        actions=list(ADMIN_ACTIONS),
        resources=["*"],
    )


def role_path_arn_pattern(scope: Stack, role_path: str) -> str:
    """ARN pattern matching every role created under ``role_path`` (e.g. ``/MrkToolkit/writer/``)."""
    return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role{role_path}*"
