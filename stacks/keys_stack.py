"""Keys of one region: the multi-region key (primary or replica) and the store's keys: the table's
SSE key (DynamoDB), or the cluster storage key and the secrets key (Aurora PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from cdk_constructs.beacon_key import BeaconKey
from cdk_constructs.multi_region_key import KeyUsers, MultiRegionKey
from cdk_constructs.table_key import SECRETS_KEY, STORAGE_KEY, TABLE_KEY, ServiceKey
from lambda_src.record_crypto.settings import STORE_DYNAMODB
from stacks.config import ToolkitConfig
from stacks.shared import beacon_key_alias, beacon_key_users, removal_policy
from stacks.tenant_keys_stack import tenant_key


class KeysStack(Stack):
    """Attributes: ``mrk_arn`` (this region's ARN of the MRK); DynamoDB: ``table_key_arn``;
    Aurora: ``storage_key_arn``, ``secrets_key_arn`` (the other store's are None);
    ``tenant_key_arns``: tenant id -> this region's replica of its key (``tenant_primary_arns``
    names the primaries of the tenants with a replica here; none without tenants); ``beacon_key_arn``:
    this region's ARN of the multi-region HMAC key (None without ``beaconFields``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ToolkitConfig,
        key_users: KeyUsers,
        primary_key_arn: str | None = None,
        primary_beacon_key_arn: str | None = None,
        tenant_primary_arns: Mapping[str, str] | None = None,
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
        self.mrk_arn = self.mrk.key_arn
        self.table_key_arn: str | None = None
        self.storage_key_arn: str | None = None
        self.secrets_key_arn: str | None = None
        common: dict[str, Any] = {
            "admin_arns": config.key_admin_arns,
            "pending_window_days": config.key_pending_window_days,
            "removal_policy": removal,
        }
        if config.store == STORE_DYNAMODB:
            self._table_key(config, common)
        else:
            self._database_keys(config, common)
        CfnOutput(self, "RecordsKeyArn", value=self.mrk_arn, description="Multi-region key ARN in this region")
        tenants = {t.tenant_id: t for t in config.tenants}
        self.tenant_keys = {
            tenant_id: tenant_key(
                self, config=config, key_users=key_users, tenant=tenants[tenant_id], primary_key_arn=arn
            )
            for tenant_id, arn in sorted((tenant_primary_arns or {}).items())
        }
        self.tenant_key_arns = {tenant_id: key.key_arn for tenant_id, key in self.tenant_keys.items()}
        self.beacon_key: BeaconKey | None = None
        self.beacon_key_arn: str | None = None
        if config.beacon_fields:
            self._beacon_key(config, primary_beacon_key_arn)

    def _beacon_key(self, config: ToolkitConfig, primary_key_arn: str | None) -> None:
        """Beacons: the multi-region HMAC key, primary in the primary region, a replica elsewhere."""
        self.beacon_key = BeaconKey(
            self,
            "BeaconKey",
            users=beacon_key_users(config),
            alias=beacon_key_alias(config),
            primary_key_arn=primary_key_arn,
            replica_regions=config.replica_regions,
            admin_arns=config.key_admin_arns,
            pending_window_days=config.key_pending_window_days,
            promotion_regions=config.regions,
            removal_policy=removal_policy(config),
        )
        self.beacon_key_arn = self.beacon_key.key_arn
        CfnOutput(self, "BeaconKeyArn", value=self.beacon_key_arn, description="Beacon (HMAC) key ARN in this region")

    def _table_key(self, config: ToolkitConfig, common: dict[str, Any]) -> None:
        """The DynamoDB store: the table's SSE key."""
        self.table_key = ServiceKey(self, "TableKey", spec=TABLE_KEY, alias=f"{config.key_alias}-table", **common)
        self.table_key_arn = self.table_key.key_arn

    def _database_keys(self, config: ToolkitConfig, common: dict[str, Any]) -> None:
        """The Aurora store: the cluster storage key and the secrets key, both exported."""
        self.storage_key = ServiceKey(
            self, "StorageKey", spec=STORAGE_KEY, alias=f"{config.key_alias}-storage", **common
        )
        self.secrets_key = ServiceKey(
            self, "SecretsKey", spec=SECRETS_KEY, alias=f"{config.key_alias}-secrets", **common
        )
        self.storage_key_arn = self.storage_key.key_arn
        self.secrets_key_arn = self.secrets_key.key_arn
        CfnOutput(self, "StorageKeyArn", value=self.storage_key_arn, description="Storage key of this region")
        CfnOutput(self, "SecretsKeyArn", value=self.secrets_key_arn, description="Secrets key of this region")
