"""Builds the stack graph for a config: keys, then table, then functions, regions in parallel.

Depth of the graph is 4 whatever the number of regions: primary keys -> replica keys (need the
primary's ARN) -> table (needs every region's SSE key) -> functions of every region.
Cross-region values travel as weak references (``Fn::GetStackOutput``, see cdk.json).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, PCIDSS321Checks

from cdk_constructs.nag_rules import MrkToolkitChecks
from stacks.config import ToolkitConfig
from stacks.functions_stack import FunctionsStack
from stacks.keys_stack import KeysStack
from stacks.shared import key_users
from stacks.table_stack import TableStack


@dataclass(frozen=True)
class ToolkitStacks:
    keys: dict[str, KeysStack]
    table: TableStack
    functions: dict[str, FunctionsStack]

    def all(self) -> list[cdk.Stack]:
        return [*self.keys.values(), self.table, *self.functions.values()]


def build_stacks(app: cdk.App, config: ToolkitConfig) -> ToolkitStacks:
    def env(region: str) -> cdk.Environment:
        return cdk.Environment(account=config.account, region=region)

    prefix = config.stack_prefix
    users = key_users(config)
    description = "Multi-region client-side encryption toolkit"
    primary = config.primary_region
    keys: dict[str, KeysStack] = {
        primary: KeysStack(
            app,
            f"{prefix}-Keys-{primary}",
            config=config,
            key_users=users,
            env=env(primary),
            description=f"{description}: multi-region key (primary) and table key, {primary}",
        )
    }
    for region in config.replica_regions:
        keys[region] = KeysStack(
            app,
            f"{prefix}-Keys-{region}",
            config=config,
            key_users=users,
            primary_key_arn=keys[primary].mrk_arn,
            env=env(region),
            description=f"{description}: multi-region key (replica) and table key, {region}",
        )
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
            env=env(region),
            description=f"{description}: writer and reader functions, {region}",
        )
        # The functions need the table replica, which they name (no reference to follow).
        stack.add_stack_dependency(table)
        functions[region] = stack
    return ToolkitStacks(keys=keys, table=table, functions=functions)


def add_compliance_checks(app: cdk.App) -> None:
    """cdk-nag 3 packs run as validation plugins: any unacknowledged finding fails synth."""
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True),
        NIST80053R5Checks(app, verbose=True),
        HIPAASecurityChecks(app, verbose=True),
        PCIDSS321Checks(app, verbose=True),
        # Our own rules: global table replicas, replica key policies, replication scope, role separation.
        MrkToolkitChecks(app, verbose=True),
    )
