"""Every role the deployment holds may do exactly its contract, decided on what is DEPLOYED.

The roles are not a list written here: they are every ``AWS::IAM::Role`` of the toolkit's
stacks (CloudFormation's ListStackResources in each region), so a role a change adds is checked
too, and fails without a contract. Each role's policies are read back through IAM (managed,
AWS managed and inline), the keys' policies through KMS, and cloud_assembly/role_access.py asks
the policy engine every request the role could make (policy_engine/catalogue.py's actions, on
the deployment's resources in every region, the same ARNs in another account, resources that
are not the toolkit's, whatever its policies name, and ``*``; for KMS with no, the toolkit's and
a changed encryption context, and through Secrets Manager), then compares what is allowed with
the role's contract (cloud_assembly/contracts.py) both ways. One check per role; the main job
(DynamoDB and Aurora stores) and ``verify`` run them.

A role's trust policy decides ``sts:AssumeRole`` on it (as a key policy decides key use), and a
key's tags are the ``aws:ResourceTag/*`` of requests on it: a tenant-access role is asked as a
session tagged with each tenant the keys name, and untagged (README "Tenants").

Reads: cloudformation:DescribeStacks, cloudformation:ListStackResources, iam:GetRole and the
role policy reads of ``DeployedReader``, kms:GetKeyPolicy, kms:ListResourceTags,
dynamodb:DescribeTable, secretsmanager:DescribeSecret.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

from botocore.exceptions import ClientError

from cloud_assembly.contracts import CONTRACTS, contract_for
from cloud_assembly.intrinsics import partition as partition_of
from cloud_assembly.role_access import DeployedRole, DeploymentView, StackResource, arn_of, role_access
from offline.verification.checks import NamedCheck
from offline.verification.resources import deployed_stack_resources

KEY_TYPES = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")


class Reader(Protocol):
    """What is read back (offline/verification/invariants.py's DeployedReader)."""

    client: Callable[[str, str], Any]
    account: str
    stack_prefix: str  # the stacks are named <stack_prefix>-...

    def role_policies(self, role_arn: str) -> list[tuple[str, Any]]: ...
    def key_policy(self, region: str, key_arn: str) -> dict[str, Any]: ...


def _table_regions(reader: Reader, region: str, name: str, regions: tuple[str, ...]) -> list[str]:
    """The regions of a global table's replicas (DescribeTable; a region by region look where the
    table does not list them)."""
    table = reader.client("dynamodb", region).describe_table(TableName=name)["Table"]
    listed = [r["RegionName"] for r in table.get("Replicas", [])]
    if listed:
        return sorted({region, *listed})
    found = []
    for other in regions:
        try:
            reader.client("dynamodb", other).describe_table(TableName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            continue
        found.append(other)
    return found


def _resources(
    reader: Reader, region: str, stack: str, summary: dict[str, Any], regions: tuple[str, ...]
) -> list[StackResource]:
    kind, physical, lid = summary["ResourceType"], summary["PhysicalResourceId"], summary["LogicalResourceId"]
    partition = partition_of(region)
    if kind == "AWS::DynamoDB::GlobalTable":
        return [
            StackResource(stack, r, lid, kind, arn_of(kind, r, reader.account, partition, physical))
            for r in _table_regions(reader, region, physical, regions)
        ]
    arn = arn_of(kind, region, reader.account, partition, physical)
    out = [StackResource(stack, region, lid, kind, arn)]
    if kind == "AWS::SecretsManager::Secret" and arn:
        described = reader.client("secretsmanager", region).describe_secret(SecretId=arn)
        for replica in described.get("ReplicationStatus", []):
            other = replica["Region"]
            out.append(StackResource(stack, other, lid, kind, arn.replace(f":{region}:", f":{other}:", 1)))
    return out


def deployed_view(reader: Reader, regions: tuple[str, ...]) -> DeploymentView:
    """The toolkit's stacks in ``regions`` as deployed: their resources, roles and key policies."""
    iam = reader.client("iam", "us-east-1")
    resources: list[StackResource] = []
    roles: list[DeployedRole] = []
    key_policies: dict[str, Any] = {}
    trust_policies: dict[str, Any] = {}
    tags: dict[str, dict[str, str]] = {}
    for region in regions:
        for stack, summary in deployed_stack_resources(reader.client, reader.stack_prefix, region):
            if summary["ResourceType"] == "AWS::IAM::Role":
                described = iam.get_role(RoleName=summary["PhysicalResourceId"])["Role"]
                arn = described["Arn"]
                trust_policies[arn] = _document(described.get("AssumeRolePolicyDocument") or {})
                policies = tuple(reader.role_policies(arn))
                roles.append(DeployedRole(stack, region, summary["LogicalResourceId"], arn, policies))
                continue
            for item in _resources(reader, region, stack, summary, regions):
                resources.append(item)
                if item.type in KEY_TYPES and item.arn:
                    key_policies[item.arn] = reader.key_policy(item.region, item.arn)
                    tags[item.arn] = _key_tags(reader, item.region, item.arn)
    partition = roles[0].arn.split(":")[1] if roles else "aws"
    return DeploymentView(reader.account, partition, tuple(resources), tuple(roles), key_policies, trust_policies, tags)


def _document(document: Any) -> Any:
    return json.loads(unquote(document)) if isinstance(document, str) else document


def _key_tags(reader: Reader, region: str, key_arn: str) -> dict[str, str]:
    kms = reader.client("kms", region)
    out: dict[str, str] = {}
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_arn):
        out.update({t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])})
    return out


def _title(role: DeployedRole) -> str:
    contract = contract_for(role.stem)
    return f"{contract.title if contract else f'the role {role.stack}/{role.stem}'} in {role.region}"


def _order(regions: tuple[str, ...]) -> Callable[[DeployedRole], tuple[int, int, str]]:
    kinds = [c.roles for c in CONTRACTS]

    def key(role: DeployedRole) -> tuple[int, int, str]:
        kind = next((i for i, stems in enumerate(kinds) if role.stem in stems), len(kinds))
        where = regions.index(role.region) if role.region in regions else len(regions)
        return where, kind, role.logical_id

    return key


def permission_checks(reader: Reader, regions: tuple[str, ...]) -> list[NamedCheck]:
    """One check per deployed role: it may do exactly its contract."""
    try:
        view = deployed_view(reader, regions)
    except Exception as exc:
        error = f"reading the deployment's roles back failed: {type(exc).__name__}: {exc}"

        def unreadable() -> str:
            raise AssertionError(error)

        return [("deployed: every role may do exactly its contract", unreadable)]
    roles = sorted(view.roles, key=_order(regions))
    titles = [_title(r) for r in roles]
    out: list[NamedCheck] = []
    for role, title in zip(roles, titles, strict=True):
        name = title if titles.count(title) == 1 else f"{title} ({role.stack}/{role.stem})"

        def check(role: DeployedRole = role) -> str:
            access = role_access(role, view)
            failure = access.failure()
            assert failure is None, failure
            return access.summary()

        out.append((f"deployed: {name} may do exactly its contract", check))
    return out
