"""The client-side encryption key: a KMS multi-region key primary or one of its replicas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from aws_cdk import Aws, CfnTag, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_constructs.key_policies import multi_region_admin_statements, multi_region_cfn_key, role_path_arn_pattern
from lambda_src.record_crypto.settings import TENANT_KEY


@dataclass(frozen=True)
class KeyUsers:
    """Who may use the multi-region key and with which encryption context.

    ``writer_role_path`` / ``reader_role_path``: IAM role paths (``/Prefix/writer/``); only roles
    under the writer path may ``kms:GenerateDataKey`` and only roles under the reader path may
    ``kms:Decrypt``. ``encryption_context``: the exact key/value pairs every request must carry
    (checked with ``kms:EncryptionContext:<key>``).
    """

    writer_role_path: str
    reader_role_path: str
    encryption_context: Mapping[str, str]

    def for_tenant(self, tenant_id: str) -> KeyUsers:
        """The same users, bound to one tenant: every use must carry ``kms:EncryptionContext:tenant``."""
        return replace(self, encryption_context={**self.encryption_context, TENANT_KEY: tenant_id})


def _use_statement(
    scope: Stack, *, sid: str, action: str, role_path: str, encryption_context: Mapping[str, str]
) -> iam.PolicyStatement:
    conditions: dict[str, dict[str, object]] = {
        "StringEquals": {
            "kms:CallerAccount": Aws.ACCOUNT_ID,
            **{f"kms:EncryptionContext:{k}": v for k, v in encryption_context.items()},
        },
        "ArnLike": {"aws:PrincipalArn": role_path_arn_pattern(scope, role_path)},
    }
    return iam.PolicyStatement(
        sid=sid,
        principals=[iam.AccountRootPrincipal()],
        actions=[action],
        resources=["*"],
        conditions=conditions,
    )


def mrk_key_policy(
    scope: Stack,
    *,
    admin_arns: Sequence[str],
    users: KeyUsers,
    replica_regions: Sequence[str] = (),
    promotion_regions: Sequence[str] = (),
) -> iam.PolicyDocument:
    """Key policy of the primary (``replica_regions`` given) or of a replica (none).

    ``promotion_regions``: the regions the primary may be moved to with ``kms:UpdatePrimaryRegion``
    (every region of the deployment, so that it can also be moved back), by the key
    administrators only. KMS checks that permission on both the current primary and the replica
    being promoted, so every key of the set carries the statement.
    """
    statements = multi_region_admin_statements(
        admin_arns, replica_regions=replica_regions, promotion_regions=promotion_regions
    )
    statements += [
        _use_statement(
            scope,
            sid="WritersGenerateDataKeysWithRecordContext",
            action="kms:GenerateDataKey",
            role_path=users.writer_role_path,
            encryption_context=users.encryption_context,
        ),
        _use_statement(
            scope,
            sid="ReadersDecryptWithRecordContext",
            action="kms:Decrypt",
            role_path=users.reader_role_path,
            encryption_context=users.encryption_context,
        ),
    ]
    return iam.PolicyDocument(statements=statements)


def _description_and_tags(tenant: str | None) -> tuple[str, list[CfnTag] | None]:
    description = "Multi-region key for client-side (envelope) encryption of records"
    if tenant is None:
        return description, None  # the records key's template stays as it was
    return f"{description} of tenant {tenant}", [CfnTag(key=TENANT_KEY, value=tenant)]


class MultiRegionKey(Construct):
    """The multi-region key (MRK) in one region: the primary, or a replica of it.

    Props (keyword-only):
      primary_key_arn: ``None`` for the primary; the primary's ARN for a replica.
      replica_regions: regions the primary may be replicated to (``kms:ReplicaRegion``);
        required for the primary (but a tenant's key may have none), ignored for a replica.
      admin_arns: key administrators; default (empty) is the account, delegating to IAM.
      users: writer/reader role paths and the required encryption context.
      alias: alias created for the key in this region (same name in every region).
      pending_window_days: 7-30, waiting period before deletion.
      rotation_period_days: 90-2560, automatic rotation period of the primary (default 365);
        replicas follow the primary's rotations and take no period of their own.
      promotion_regions: regions the key administrators may move the primary to
        (``kms:UpdatePrimaryRegion`` under ``kms:PrimaryRegion``); default none (nobody may).
      removal_policy: default RETAIN.
      tenant: ``None`` (the records key) or the tenant id the key is for: it is tagged
        ``tenant=<id>``, and ``users`` should be ``users.for_tenant(id)`` so that its key policy
        binds use to the tenant's encryption context.

    Attributes: ``key_arn`` (the ARN in this region; same ``mrk-`` id everywhere), ``key_id``,
    ``cfn_key`` (``CfnKey`` or ``CfnReplicaKey``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        users: KeyUsers,
        alias: str,
        primary_key_arn: str | None = None,
        replica_regions: Sequence[str] = (),
        admin_arns: Sequence[str] = (),
        pending_window_days: int = 30,
        rotation_period_days: int = 365,
        promotion_regions: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        tenant: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if tenant is not None and users.encryption_context.get(TENANT_KEY) != tenant:
            raise ValueError(f"MultiRegionKey: the key of tenant {tenant} needs users.for_tenant({tenant!r})")
        stack = Stack.of(self)
        self.is_primary = primary_key_arn is None
        # A tenant of one region has a primary and no replica (its policy then lets nobody replicate it).
        if self.is_primary and not replica_regions and tenant is None:
            raise ValueError("MultiRegionKey: a primary key needs replica_regions")
        policy = mrk_key_policy(
            stack,
            admin_arns=admin_arns,
            users=users,
            replica_regions=replica_regions if self.is_primary else (),
            promotion_regions=promotion_regions,
        )
        description, tags = _description_and_tags(tenant)
        self.cfn_key: kms.CfnKey | kms.CfnReplicaKey
        self.cfn_key, self.key_arn, key_id = multi_region_cfn_key(
            self,
            primary_key_arn=primary_key_arn,
            description=description,
            pending_window_days=pending_window_days,
            policy=policy,
            tags=tags,
            primary_props={
                "enable_key_rotation": True,
                "rotation_period_in_days": rotation_period_days,
                "key_spec": "SYMMETRIC_DEFAULT",
                "key_usage": "ENCRYPT_DECRYPT",
            },
        )
        self.key_id: str = key_id
        self.cfn_key.apply_removal_policy(removal_policy)
        kms.CfnAlias(self, "Alias", alias_name=alias, target_key_id=key_id)
