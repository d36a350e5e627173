"""The records table: a DynamoDB global table, each replica encrypted with its own region's key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct


class EncryptedGlobalTable(Construct):
    """``TableV2`` in this stack's region with a replica in every other region.

    Props (keyword-only):
      table_name: physical name, the same in every region (the functions are told it).
      partition_key: name of the string partition key.
      key_arns_by_region: the SSE key ARN of every region, this stack's region included;
        each replica is encrypted with the key of its own region.
      removal_policy: default RETAIN; deletion protection and PITR are always on.
      beacon_indexes: (index name, numeric key attribute) pairs: a global secondary index each, in
        every replica, projecting every attribute (a lookup authenticates a candidate whole: the
        writer's signature covers every attribute it stored). Default none.

    Attributes: ``table`` (the ``TableV2``), ``replica_regions``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table_name: str,
        partition_key: str,
        key_arns_by_region: Mapping[str, str],
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        beacon_indexes: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        if region not in key_arns_by_region:
            raise ValueError(f"EncryptedGlobalTable: no SSE key given for the table's own region {region}")
        self.replica_regions = tuple(r for r in key_arns_by_region if r != region)
        if not self.replica_regions:
            raise ValueError("EncryptedGlobalTable: a global table needs at least one replica region")
        local_key = kms.Key.from_key_arn(self, "LocalKey", key_arns_by_region[region])
        indexes = [
            dynamodb.GlobalSecondaryIndexPropsV2(
                index_name=index_name,
                partition_key=dynamodb.Attribute(name=attribute, type=dynamodb.AttributeType.NUMBER),
                projection_type=dynamodb.ProjectionType.ALL,
            )
            for index_name, attribute in beacon_indexes
        ]
        self.table = dynamodb.TableV2(
            self,
            "Table",
            table_name=table_name,
            partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(
                local_key,
                replica_key_arns={r: key_arns_by_region[r] for r in self.replica_regions},
            ),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            replicas=[
                dynamodb.ReplicaTableProps(
                    region=r,
                    point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                        point_in_time_recovery_enabled=True
                    ),
                    deletion_protection=True,
                )
                for r in self.replica_regions
            ],
            removal_policy=removal_policy,
            **({"global_secondary_indexes": indexes} if indexes else {}),
        )
