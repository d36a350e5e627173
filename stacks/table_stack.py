"""The records global table, in the primary region, with a replica in every other region."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk_constructs.encrypted_global_table import EncryptedGlobalTable
from lambda_src.record_crypto.settings import PARTITION_KEY  # the functions' key attribute
from stacks.config import ToolkitConfig
from stacks.shared import removal_policy


class TableStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ToolkitConfig,
        table_key_arns: Mapping[str, str],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.records = EncryptedGlobalTable(
            self,
            "Records",
            table_name=config.table_name,
            partition_key=PARTITION_KEY,
            key_arns_by_region=table_key_arns,
            removal_policy=removal_policy(config),
            beacon_indexes=[(f.index_name, f.attribute) for f in config.beacon_fields],
        )
        CfnOutput(self, "TableName", value=config.table_name, description="Records table (same name in every region)")
