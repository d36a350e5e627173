"""The beacon key: a KMS multi-region HMAC key (primary or replica) used only to compute beacons.

A beacon is a truncated HMAC of a sensitive field's normalized value (README "Beacons"). The key is
``HMAC_256`` / ``GENERATE_VERIFY_MAC``: its material never leaves KMS, and a replica computes the same
MAC as its primary, so a beacon written in one region is found in every other. It is a key of its own
(not the records key): an HMAC key cannot encrypt, and who may compute beacons is decided apart from
who may decrypt records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_constructs.key_policies import multi_region_admin_statements, multi_region_cfn_key, role_path_arn_pattern

KEY_SPEC = "HMAC_256"
KEY_USAGE = "GENERATE_VERIFY_MAC"
MAC_ALGORITHM = "HMAC_SHA_256"
MAC_ACTION = "kms:GenerateMac"


@dataclass(frozen=True)
class BeaconKeyUsers:
    """Who may compute beacons: roles under ``writer_role_path`` (to store them) and under
    ``finder_role_path`` (to look records up). Nobody may ``kms:VerifyMac``: a beacon is compared, not
    verified."""

    writer_role_path: str
    finder_role_path: str


def beacon_key_policy(
    scope: Stack,
    *,
    admin_arns: Sequence[str],
    users: BeaconKeyUsers,
    replica_regions: Sequence[str] = (),
    promotion_regions: Sequence[str] = (),
) -> iam.PolicyDocument:
    """The primary's policy (``replica_regions`` given) or a replica's: administration apart from use
    (as the records key's), replication and promotion only within the deployment, and ``GenerateMac``
    with ``HMAC_SHA_256`` by the writer and finder roles of this account only."""
    statements = multi_region_admin_statements(
        admin_arns, replica_regions=replica_regions, promotion_regions=promotion_regions
    )
    for sid, role_path in (
        ("WritersComputeBeacons", users.writer_role_path),
        ("FindersComputeBeacons", users.finder_role_path),
    ):
        statements.append(
            iam.PolicyStatement(
                sid=sid,
                principals=[iam.AccountRootPrincipal()],
                actions=[MAC_ACTION],
                resources=["*"],
                conditions={
                    "StringEquals": {"kms:CallerAccount": Aws.ACCOUNT_ID, "kms:MacAlgorithm": MAC_ALGORITHM},
                    "ArnLike": {"aws:PrincipalArn": role_path_arn_pattern(scope, role_path)},
                },
            )
        )
    return iam.PolicyDocument(statements=statements)


class BeaconKey(Construct):
    """The multi-region HMAC key in one region: the primary, or a replica of it.

    Props (keyword-only):
      users: the writer and finder role paths (``BeaconKeyUsers``).
      alias: alias of the key in this region (the same name in every region).
      primary_key_arn: ``None`` for the primary; the primary's ARN for a replica.
      replica_regions: regions the primary may be replicated to (required for the primary).
      admin_arns: key administrators; default (empty) the account, delegating to IAM.
      pending_window_days: 7-30, waiting period before deletion.
      promotion_regions: regions the administrators may move the primary to.
      removal_policy: default RETAIN (a lost key loses every beacon: lookups find nothing).

    No rotation: KMS rotates only symmetric encryption keys, and a rotated beacon key would change
    every beacon (records written before could no longer be found).

    Attributes: ``key_arn`` (this region's ARN; the same ``mrk-`` id everywhere), ``cfn_key``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        users: BeaconKeyUsers,
        alias: str,
        primary_key_arn: str | None = None,
        replica_regions: Sequence[str] = (),
        admin_arns: Sequence[str] = (),
        pending_window_days: int = 30,
        promotion_regions: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        is_primary = primary_key_arn is None
        if is_primary and not replica_regions:
            raise ValueError("BeaconKey: a primary key needs replica_regions")
        policy = beacon_key_policy(
            Stack.of(self),
            admin_arns=admin_arns,
            users=users,
            replica_regions=replica_regions if is_primary else (),
            promotion_regions=promotion_regions,
        )
        self.cfn_key: kms.CfnKey | kms.CfnReplicaKey
        self.cfn_key, self.key_arn, key_id = multi_region_cfn_key(
            self,
            primary_key_arn=primary_key_arn,
            description="Multi-region HMAC key computing the records' beacons",
            pending_window_days=pending_window_days,
            policy=policy,
            primary_props={"key_spec": KEY_SPEC, "key_usage": KEY_USAGE},
        )
        self.cfn_key.apply_removal_policy(removal_policy)
        kms.CfnAlias(self, "Alias", alias_name=alias, target_key_id=key_id)
