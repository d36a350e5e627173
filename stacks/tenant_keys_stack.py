"""Tenant keys (README "Tenants"): one multi-region key per tenant, its primary in the tenant's
primary region and a replica in each other region of the tenant, nowhere else.

The primaries live in a stack of their own per region (``<prefix>-TenantKeys-<region>``, which
depends on nothing); the replicas live in the region's keys stack, which follows the primaries.
A tenant whose primary is in a replica region of the deployment, with a replica in the
deployment's primary region, would otherwise make the keys stacks depend on each other.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from cdk_constructs.multi_region_key import KeyUsers, MultiRegionKey
from stacks.config import TenantConfig, ToolkitConfig
from stacks.shared import removal_policy


def tenant_key_alias(config: ToolkitConfig, tenant_id: str) -> str:
    return f"{config.key_alias}/tenant/{tenant_id}"


def tenant_key(
    scope: Construct,
    *,
    config: ToolkitConfig,
    key_users: KeyUsers,
    tenant: TenantConfig,
    primary_key_arn: str | None = None,
) -> MultiRegionKey:
    """The tenant's key in the scope's region: the primary (``primary_key_arn`` None) or a replica.
    Its construct id depends on the tenant id only, so its logical id does too (pinned in tests)."""
    return MultiRegionKey(
        scope,
        f"Tenant-{tenant.tenant_id}",
        users=key_users.for_tenant(tenant.tenant_id),
        alias=tenant_key_alias(config, tenant.tenant_id),
        primary_key_arn=primary_key_arn,
        replica_regions=tenant.replica_regions,
        admin_arns=config.key_admin_arns,
        pending_window_days=config.key_pending_window_days,
        rotation_period_days=config.key_rotation_days,
        promotion_regions=tenant.regions,
        removal_policy=removal_policy(config),
        tenant=tenant.tenant_id,
    )


class TenantKeysStack(Stack):
    """The primaries of the tenant keys homed in this stack's region.

    Attributes: ``tenant_key_arns`` (tenant id -> the primary's ARN).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ToolkitConfig,
        key_users: KeyUsers,
        tenants: tuple[TenantConfig, ...],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.tenant_key_arns: dict[str, str] = {}
        for tenant in tenants:
            # A tenant of one region gets a multi-region key all the same: its regions may grow later.
            key = tenant_key(self, config=config, key_users=key_users, tenant=tenant)
            self.tenant_key_arns[tenant.tenant_id] = key.key_arn
