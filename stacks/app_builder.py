"""Builds the stack graph for a config: keys, then table, then functions, regions in parallel.

Depth of the graph is 4 whatever the number of regions: primary keys -> replica keys (need the
primary's ARN) -> table (needs every region's SSE key) -> functions of every region.
Cross-region values travel as weak references (``Fn::GetStackOutput``, see cdk.json).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, PCIDSS321Checks
from constructs import IConstruct

from cdk_constructs.encrypting_functions import DatabaseAccess
from cdk_constructs.isolated_network import IsolatedNetwork
from cdk_constructs.multi_region_key import MultiRegionKey
from cdk_constructs.nag_rules import MrkToolkitChecks
from cdk_constructs.vpc_peering import requester
from lambda_src.record_crypto.settings import STORE_AURORA_POSTGRESQL, STORE_DYNAMODB
from stacks.audit_stack import AuditStack
from stacks.config import ToolkitConfig
from stacks.database_stack import DatabaseStack
from stacks.functions_stack import FunctionsStack
from stacks.keys_stack import KeysStack
from stacks.network_stack import NetworkStack
from stacks.peering_stack import PeeringStack, PeerRoutesStack
from stacks.shared import key_users
from stacks.table_stack import TableStack
from stacks.tenant_keys_stack import TenantKeysStack

DESCRIPTION = "Multi-region client-side encryption toolkit"


@dataclass(frozen=True)
class ToolkitStacks:
    """DynamoDB store: ``table`` is set; Aurora store: ``networks`` and ``databases`` are set
    (by region) and ``table`` is None."""

    keys: dict[str, KeysStack]
    table: TableStack | None
    functions: dict[str, FunctionsStack]
    networks: dict[str, NetworkStack] = field(default_factory=dict)
    databases: dict[str, DatabaseStack] = field(default_factory=dict)
    # Aurora with more than one region: the peering connections each region requests (a region
    # requesting none has no stack) and each region's routes to its peers.
    peerings: dict[str, PeeringStack] = field(default_factory=dict)
    peer_routes: dict[str, PeerRoutesStack] = field(default_factory=dict)
    audit: AuditStack | None = None  # the trail (None: audit off, or an existing trail named)
    # The regions homing a tenant key's primary (none without tenants).
    tenant_keys: dict[str, TenantKeysStack] = field(default_factory=dict)

    def tenant_keys_in(self, region: str) -> dict[str, MultiRegionKey]:
        """Tenant id -> its key in ``region``, for the tenants whose key exists there."""
        return tenant_keys_in(self.tenant_keys, self.keys[region], region)

    def tenant_key_arns(self, region: str) -> dict[str, str]:
        return {tenant_id: key.key_arn for tenant_id, key in self.tenant_keys_in(region).items()}

    def all(self) -> list[cdk.Stack]:
        table = [self.table] if self.table is not None else []
        audit = [self.audit] if self.audit is not None else []
        return [
            *audit,
            *self.tenant_keys.values(),
            *self.keys.values(),
            *table,
            *self.networks.values(),
            *self.peerings.values(),
            *self.peer_routes.values(),
            *self.databases.values(),
            *self.functions.values(),
        ]


def tenant_keys_in(tenant_keys: dict[str, TenantKeysStack], keys: KeysStack, region: str) -> dict[str, MultiRegionKey]:
    primaries = tenant_keys[region].tenant_keys if region in tenant_keys else {}
    return dict(sorted({**primaries, **keys.tenant_keys}.items()))


def build_stacks(app: cdk.App, config: ToolkitConfig) -> ToolkitStacks:
    def env(region: str) -> cdk.Environment:
        return cdk.Environment(account=config.account, region=region)

    prefix = config.stack_prefix
    users = key_users(config)
    description = DESCRIPTION
    primary = config.primary_region
    store_keys = "table key" if config.store == STORE_DYNAMODB else "storage and secrets keys"
    tenant_keys = _tenant_keys_stacks(app, config, env)
    keys: dict[str, KeysStack] = {
        primary: KeysStack(
            app,
            f"{prefix}-Keys-{primary}",
            config=config,
            key_users=users,
            tenant_primary_arns=_tenant_primary_arns(config, tenant_keys, primary),
            env=env(primary),
            description=f"{description}: multi-region key (primary) and {store_keys}, {primary}",
        )
    }
    for region in config.replica_regions:
        keys[region] = KeysStack(
            app,
            f"{prefix}-Keys-{region}",
            config=config,
            key_users=users,
            primary_key_arn=keys[primary].mrk_arn,
            primary_beacon_key_arn=keys[primary].beacon_key_arn,
            tenant_primary_arns=_tenant_primary_arns(config, tenant_keys, region),
            env=env(region),
            description=f"{description}: multi-region key (replica) and {store_keys}, {region}",
        )
    audit = _audit_stack(app, config, env)
    if config.store == STORE_AURORA_POSTGRESQL:
        return replace(_aurora_stacks(app, config, keys, tenant_keys, env), audit=audit)
    table = TableStack(
        app,
        f"{prefix}-Table",
        config=config,
        table_key_arns={region: stack.table_key_arn for region, stack in keys.items()},
        env=env(primary),
        description=f"{description}: records global table, replicas in {', '.join(config.regions)}",
    )
    functions: dict[str, FunctionsStack] = {}
    for region in config.regions:
        stack = FunctionsStack(
            app,
            f"{prefix}-Functions-{region}",
            config=config,
            mrk_arn=keys[region].mrk_arn,
            beacon_key_arn=keys[region].beacon_key_arn,
            store_key_arns=region_key_arns([keys[region]]),
            tenant_keys=tenant_keys_in(tenant_keys, keys[region], region),
            env=env(region),
            description=f"{description}: writer and reader functions, {region}",
        )
        # The functions need the table replica, which they name (no reference to follow).
        stack.add_stack_dependency(table)
        functions[region] = stack
    return ToolkitStacks(keys=keys, table=table, functions=functions, audit=audit, tenant_keys=tenant_keys)


def region_key_arns(stacks: Sequence[IConstruct]) -> list[str]:
    """Every single-region key the (same-region) stacks hold (storage, secrets, table, flow logs,
    schema setup logs...): the region's audit rule watches their administration. The records key is
    named apart; the Audit stack's key is watched by its own rule."""
    found: list[str] = []
    for scope in stacks:
        for construct in scope.node.find_all():
            if isinstance(construct, kms.CfnKey) and not construct.multi_region and construct.attr_arn not in found:
                found.append(construct.attr_arn)
    return found


def _audit_stack(app: cdk.App, config: ToolkitConfig, env: Callable[[str], cdk.Environment]) -> AuditStack | None:
    """The trail, in the primary region, depending on nothing (a multi-region trail records every region)."""
    if not config.audit.creates_trail:
        return None
    return AuditStack(
        app,
        f"{config.stack_prefix}-Audit",
        config=config,
        env=env(config.primary_region),
        description=f"{DESCRIPTION}: audit trail (every region's management events, KMS use included)",
    )


def _tenant_keys_stacks(
    app: cdk.App, config: ToolkitConfig, env: Callable[[str], cdk.Environment]
) -> dict[str, TenantKeysStack]:
    """One stack per region that homes the primary of a tenant's key (none without tenants)."""
    stacks: dict[str, TenantKeysStack] = {}
    for region in config.regions:
        homed = tuple(t for t in config.tenants if t.primary_region == region)
        if homed:
            stacks[region] = TenantKeysStack(
                app,
                f"{config.stack_prefix}-TenantKeys-{region}",
                config=config,
                key_users=key_users(config),
                tenants=homed,
                env=env(region),
                description=f"{DESCRIPTION}: tenant keys (primaries) of {len(homed)} tenant(s), {region}",
            )
    return stacks


def _tenant_primary_arns(config: ToolkitConfig, tenant_keys: dict[str, TenantKeysStack], region: str) -> dict[str, str]:
    """Tenant id -> its primary's ARN, for the tenants with a replica in ``region``."""
    return {
        t.tenant_id: tenant_keys[t.primary_region].tenant_key_arns[t.tenant_id]
        for t in config.tenants
        if region in t.replica_regions
    }


def _aurora_stacks(
    app: cdk.App,
    config: ToolkitConfig,
    keys: dict[str, KeysStack],
    tenant_keys: dict[str, TenantKeysStack],
    env: Callable[[str], cdk.Environment],
) -> ToolkitStacks:
    """Per region: network, database (the primary's first: it creates the global cluster), functions."""
    networks = {
        region: NetworkStack(
            app,
            f"{config.stack_prefix}-Network-{region}",
            config=config,
            env=env(region),
            description=f"{DESCRIPTION}: isolated VPC, interface endpoints, security groups, {region}",
        )
        for region in config.regions
    }
    peerings, peer_routes = _peering_stacks(app, config, networks, env)
    databases = _database_stacks(app, config, keys, networks, env)
    functions = {
        region: _aurora_functions_stack(
            app,
            config,
            region,
            keys[region],
            networks[region].network,
            databases,
            env,
            tenant_keys_in(tenant_keys, keys[region], region),
        )
        for region in config.regions
    }
    for stack in functions.values():
        # A writer reaches the current primary's cluster in any region: every region's routes exist first.
        for routes in peer_routes.values():
            stack.add_stack_dependency(routes)
    return ToolkitStacks(
        keys=keys,
        table=None,
        functions=functions,
        networks=networks,
        databases=databases,
        tenant_keys=tenant_keys,
        peerings=peerings,
        peer_routes=peer_routes,
    )


def _peering_stacks(
    app: cdk.App,
    config: ToolkitConfig,
    networks: dict[str, NetworkStack],
    env: Callable[[str], cdk.Environment],
) -> tuple[dict[str, PeeringStack], dict[str, PeerRoutesStack]]:
    """A full mesh of VPC peering between the regions (stacks/peering_stack.py); none with one region."""
    aurora = config.aurora
    assert aurora is not None
    peerings: dict[str, PeeringStack] = {}
    for region in config.regions:
        requested = {p: networks[p] for p in config.regions if p != region and requester(region, p) == region}
        if requested:
            peerings[region] = PeeringStack(
                app,
                f"{config.stack_prefix}-Peering-{region}",
                network=networks[region],
                peers=requested,
                env=env(region),
                description=f"{DESCRIPTION}: VPC peering connections from {region} to {', '.join(requested)}",
            )
    peer_routes: dict[str, PeerRoutesStack] = {}
    for region in config.regions if len(config.regions) > 1 else ():
        peer_routes[region] = PeerRoutesStack(
            app,
            f"{config.stack_prefix}-PeerRoutes-{region}",
            network=networks[region],
            peer_cidrs={p: aurora.vpc_cidr(p) for p in config.regions if p != region},
            peerings=peerings,
            env=env(region),
            description=f"{DESCRIPTION}: routes to the peered VPCs, {region}",
        )
    return peerings, peer_routes


def _database_stacks(
    app: cdk.App,
    config: ToolkitConfig,
    keys: dict[str, KeysStack],
    networks: dict[str, NetworkStack],
    env: Callable[[str], cdk.Environment],
) -> dict[str, DatabaseStack]:
    primary = config.primary_region
    secrets_keys = {region: stack.secrets_key_arn for region, stack in keys.items()}
    databases: dict[str, DatabaseStack] = {}
    for region in config.regions:
        storage_key = keys[region].storage_key_arn
        assert storage_key is not None
        databases[region] = DatabaseStack(
            app,
            f"{config.stack_prefix}-Database-{region}",
            config=config,
            network=networks[region].network,
            storage_key_arn=storage_key,
            secrets_key_arns={r: arn for r, arn in secrets_keys.items() if arn is not None},
            primary=None if region == primary else databases[primary],
            env=env(region),
            description=(
                f"{DESCRIPTION}: Aurora PostgreSQL global database, "
                f"{'primary cluster and credentials' if region == primary else 'secondary cluster'}, {region}"
            ),
        )
    return databases


def _aurora_functions_stack(
    app: cdk.App,
    config: ToolkitConfig,
    region: str,
    keys: KeysStack,
    network: IsolatedNetwork,
    databases: dict[str, DatabaseStack],
    env: Callable[[str], cdk.Environment],
    tenant_keys: dict[str, MultiRegionKey],
) -> FunctionsStack:
    """One region's functions, pointed at that region's cluster with their own secrets."""
    aurora, database = config.aurora, databases[region]
    assert aurora is not None and keys.secrets_key_arn is not None
    functions = FunctionsStack(
        app,
        f"{config.stack_prefix}-Functions-{region}",
        config=config,
        mrk_arn=keys.mrk_arn,
        beacon_key_arn=keys.beacon_key_arn,
        store_key_arns=region_key_arns([keys, databases[region], cdk.Stack.of(network)]),
        tenant_keys=tenant_keys,
        database=DatabaseAccess(
            vpc=network.vpc,
            subnets=network.subnets,
            security_group=network.clients,
            # The global writer endpoint, read from this region's own Database stack (which passes the
            # primary's on): nothing in a function's template names the primary region.
            writer_host=database.output_value("GlobalWriterEndpoint"),
            reader_host=database.member.read_endpoint,
            port=database.port,
            database_name=database.database_name,
            writer_secret_arn=database.writer_secret_arn,
            reader_secret_arn=database.reader_secret_arn,
            secrets_key_arn=keys.secrets_key_arn,
        ),
        env=env(region),
        description=f"{DESCRIPTION}: writer and reader functions (Aurora PostgreSQL store), {region}",
    )
    # The schema (table and database roles) exists before any function runs.
    functions.add_stack_dependency(databases[config.primary_region])
    return functions


def add_compliance_checks(app: cdk.App, config: ToolkitConfig | None = None) -> None:
    """cdk-nag 3 packs run as validation plugins: any unacknowledged finding fails synth. With
    ``config``, our rules know each tenant's regions (MrkToolkit-TEN1)."""
    tenant_regions = {t.tenant_id: t.regions for t in config.tenants} if config is not None else None
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True),
        NIST80053R5Checks(app, verbose=True),
        HIPAASecurityChecks(app, verbose=True),
        PCIDSS321Checks(app, verbose=True),
        # Our own rules: global table replicas, replica key policies, replication scope, role separation.
        MrkToolkitChecks(app, verbose=True, tenant_regions=tenant_regions),
    )
