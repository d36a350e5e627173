"""Key policy statements shared by the multi-region key and the table's SSE keys.

Key administration is separated from key use: administrators get the management actions
listed here and no cryptographic action, no ``kms:CreateGrant``, no ``kms:ReplicateKey`` and no
``kms:UpdatePrimaryRegion`` (the multi-region key grants those two to the administrators in
statements of their own, limited to the deployment's regions); use is granted in separate
statements with conditions.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, CfnTag, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

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


def multi_region_admin_statements(
    admin_arns: Sequence[str], *, replica_regions: Sequence[str], promotion_regions: Sequence[str]
) -> list[iam.PolicyStatement]:
    """Administration of a multi-region key (the records key, a tenant's, the beacon key): the
    management actions, moving the primary only within the deployment (``kms:PrimaryRegion``) and
    replicating only to its regions (``kms:ReplicaRegion``), by the administrators only. A statement
    whose region list is empty is left out (nobody may)."""
    statements = [admin_statement(admin_arns)]
    region_scoped = (
        (
            "AdministratorsMovePrimaryWithinDeployment",
            "kms:UpdatePrimaryRegion",
            "kms:PrimaryRegion",
            promotion_regions,
        ),
        ("ReplicateOnlyToConfiguredRegions", "kms:ReplicateKey", "kms:ReplicaRegion", replica_regions),
    )
    for sid, action, condition_key, regions in region_scoped:
        if regions:
            statements.append(
                iam.PolicyStatement(
                    sid=sid,
                    principals=admin_principals(admin_arns),
                    actions=[action],
                    resources=["*"],
                    conditions={"StringEquals": {condition_key: list(regions)}},
                )
            )
    return statements


def multi_region_cfn_key(
    scope: Construct,
    *,
    primary_key_arn: str | None,
    description: str,
    pending_window_days: int,
    policy: iam.PolicyDocument,
    primary_props: dict[str, object],
    tags: list[CfnTag] | None = None,
) -> tuple[kms.CfnKey | kms.CfnReplicaKey, str, str]:
    """The ``Key`` resource of a multi-region key in one region: the primary (``primary_key_arn``
    ``None``; ``primary_props``: its spec, usage, rotation) or a replica of it (no L2 exists for
    replica keys; a replica follows its primary's spec and rotation). Returns (resource, ARN, key id)."""
    if primary_key_arn is None:
        key = kms.CfnKey(
            scope,
            "Key",
            description=f"{description} (primary)",
            multi_region=True,
            pending_window_in_days=pending_window_days,
            key_policy=policy,
            tags=tags,
            **primary_props,  # type: ignore[arg-type]
        )
        return key, key.attr_arn, key.attr_key_id
    replica = kms.CfnReplicaKey(
        scope,
        "Key",
        primary_key_arn=primary_key_arn,
        description=f"{description} (replica)",
        pending_window_in_days=pending_window_days,
        key_policy=policy,
        tags=tags,
    )
    return replica, replica.attr_arn, replica.attr_key_id
