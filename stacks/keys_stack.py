"""Keys of one region: the multi-region key (primary or replica) and the table's SSE key."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk_constructs.multi_region_key import KeyUsers, MultiRegionKey
from cdk_constructs.table_key import TableKey
from stacks.config import ToolkitConfig
from stacks.shared import removal_policy


class KeysStack(Stack):
    """Attributes: ``mrk_arn`` (this region's ARN of the MRK), ``table_key_arn``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ToolkitConfig,
        key_users: KeyUsers,
        primary_key_arn: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = removal_policy(config)
        self.mrk = MultiRegionKey(
            self,
            "RecordsKey",
            users=key_users,
            alias=config.key_alias,
            primary_key_arn=primary_key_arn,
            replica_regions=config.replica_regions,
            admin_arns=config.key_admin_arns,
            pending_window_days=config.key_pending_window_days,
            rotation_period_days=config.key_rotation_days,
            promotion_regions=config.regions,
            removal_policy=removal,
        )
        self.table_key = TableKey(
            self,
            "TableKey",
            alias=f"{config.key_alias}-table",
            admin_arns=config.key_admin_arns,
            pending_window_days=config.key_pending_window_days,
            removal_policy=removal,
        )
        self.mrk_arn = self.mrk.key_arn
        self.table_key_arn = self.table_key.key_arn
        CfnOutput(self, "RecordsKeyArn", value=self.mrk_arn, description="Multi-region key ARN in this region")
