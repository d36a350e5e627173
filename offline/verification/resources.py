"""Every resource policy and every at-rest setting, read back from what is DEPLOYED (issue 19,
item 2), against the contract of cloud_assembly/resource_contracts.py. The same code runs on the
emulated AWS (the main job) and on a real account (`verify`).

The resources are the deployed stacks' own (CloudFormation DescribeStacks and ListStackResources,
the stacks named ``<stackPrefix>-...`` in each region), never a list written here: a resource of a
type the contract does not know fails. Each is read through its service's API: key policies and
DescribeKey, SNS GetTopicAttributes (KmsMasterKeyId, Policy), CloudWatch Logs DescribeLogGroups
(kmsKeyId), DynamoDB DescribeTable (SSEDescription, in every region) and GetResourcePolicy, Secrets
Manager DescribeSecret (KmsKeyId, ReplicationStatus) and GetResourcePolicy, RDS DescribeDBClusters
and DescribeDBInstances, IAM GetRole (the trust policy), Lambda GetPolicy, S3 GetBucketEncryption
and GetBucketPolicy, CloudTrail DescribeTrails (KmsKeyId).

Per region, two checks: every resource policy names only its contract's principals and lets no
outsider do anything (decided by ``policy_engine`` over the service's action catalogue); everything
at rest is encrypted with a customer-managed key of this account and of that region.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import botocore.session
from botocore.exceptions import ClientError

from cloud_assembly.resource_contracts import (
    CALLER_FACTS,
    IAM_ONLY_ACTIONS,
    KEY_POLICIES,
    KEY_USE,
    KINDS,
    MULTI_REGION_KEY,
    OUTSIDE_ACCOUNT,
    SERVICE_FACTS,
    UNUSED_KEY,
    PolicyContract,
    named_accounts,
    policy_contract,
    principal_problems,
    role_trust_contract,
)
from policy_engine import MATCH, UNKNOWN, Caller, Request, match_statement, sid, statements

NamedCheck = tuple[str, Callable[[], str]]
KEY_TYPES = {"AWS::KMS::Key", "AWS::KMS::ReplicaKey"}


@dataclass(frozen=True)
class Policy:
    region: str
    resource: str  # its ARN (what the engine's requests name, and the messages)
    contract: PolicyContract
    document: Any


@dataclass(frozen=True)
class AtRest:
    region: str
    label: str  # what it is: "log group", "secret replica"...
    name: str  # its ARN or name
    type: str  # the resource type (a key's use follows from it)
    key: str | None  # the key reference read back; None: no customer key named
    missing: str = ""  # what None means for this resource

    @property
    def resource(self) -> str:
        return f"{self.label} {self.name}"


@dataclass
class Inventory:
    policies: list[Policy] = field(default_factory=list)
    at_rest: list[AtRest] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (region, what)
    keys: list[tuple[str, str]] = field(default_factory=list)  # (region, key id)


def deployed_stack_resources(
    client: Callable[[str, str], Any], stack_prefix: str, region: str
) -> list[tuple[str, dict[str, Any]]]:
    """(stack, resource summary) of every resource of the ``<stack_prefix>-...`` stacks deployed in
    ``region`` (DescribeStacks, ListStackResources): what the read-back checks enumerate, never a list
    of ours. No such stack is a failure."""
    cfn = client("cloudformation", region)
    stacks = sorted(
        s["StackName"]
        for page in cfn.get_paginator("describe_stacks").paginate()
        for s in page["Stacks"]
        if s["StackName"].startswith(f"{stack_prefix}-") and s["StackStatus"] != "DELETE_COMPLETE"
    )
    assert stacks, f"no stack named {stack_prefix}-... is deployed in {region}"
    return [
        (stack, resource)
        for stack in stacks
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack)
        for resource in page["StackResourceSummaries"]
    ]


@dataclass
class ResourceReader:
    """``client(service, region)`` gives an API client; ``role_arns``: (region, kind) -> the role a
    function runs under; the stacks are those named ``<stack_prefix>-...`` in ``regions``."""

    client: Callable[[str, str], Any]
    account: str
    role_arns: Mapping[tuple[str, str], str]
    stack_prefix: str
    regions: tuple[str, ...]
    _inventory: Inventory | None = None
    _keys: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def roles(self, region: str) -> list[str]:
        return [arn for (where, _), arn in self.role_arns.items() if where == region]

    def key(self, region: str, ref: str) -> dict[str, Any]:
        """DescribeKey, in the region the reference names (an ARN) or else ``region``."""
        where = ref.split(":")[3] if ref.startswith("arn:") else region
        if (where, ref) not in self._keys:
            self._keys[(where, ref)] = self.client("kms", where).describe_key(KeyId=ref)["KeyMetadata"]
        return self._keys[(where, ref)]

    def inventory(self) -> Inventory:
        if self._inventory is None:
            found = Inventory()
            for region, stack, resource in self._stack_resources():
                kind, what = KINDS.get(resource["ResourceType"]), resource["ResourceType"]
                pid = resource["PhysicalResourceId"]
                if kind is None:
                    found.unknown.append((region, f"{stack}/{resource['LogicalResourceId']} ({what})"))
                elif what in KEY_TYPES:
                    found.keys.append((region, pid))
                elif what in READERS:
                    READERS[what](self, found, region, pid)
            for region, key_id in found.keys:
                found.policies.append(self._key_policy(found, region, key_id))
            self._inventory = found
        return self._inventory

    def _stack_resources(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for region in self.regions:
            for stack, resource in deployed_stack_resources(self.client, self.stack_prefix, region):
                yield region, stack, resource

    def _key_policy(self, found: Inventory, region: str, key_id: str) -> Policy:
        meta = self.key(region, key_id)
        uses = set()
        for item in found.at_rest:
            try:
                if item.key and self.key(item.region, item.key)["Arn"] == meta["Arn"]:
                    uses.add(KEY_USE[item.type])
            except ClientError:
                continue  # a key that is not there is the at-rest check's to report
        if meta.get("MultiRegion"):
            uses.add(MULTI_REGION_KEY)
        policy = self.client("kms", region).get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"]
        return Policy(region, meta["Arn"], key_contract(uses), json.loads(policy))


def key_contract(uses: set[str]) -> PolicyContract:
    """A key's contract from what it is used for (several uses: every use's principals)."""
    contracts = [KEY_POLICIES[use] for use in sorted(uses)] or [KEY_POLICIES[UNUSED_KEY]]
    return PolicyContract(
        " and ".join(c.kind for c in contracts),
        "kms",
        function_roles=any(c.function_roles for c in contracts),
        services=tuple(sorted({s for c in contracts for s in c.services})),
    )


# -- reading one resource of each type -------------------------------------------------------------
def _log_group(reader: ResourceReader, found: Inventory, region: str, name: str) -> None:
    pages = reader.client("logs", region).get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
    groups = [g for page in pages for g in page["logGroups"] if g["logGroupName"] == name]
    assert groups, f"the log group {name} of {region} is not there"
    found.at_rest.append(
        AtRest(region, "log group", name, "AWS::Logs::LogGroup", groups[0].get("kmsKeyId"), "no kmsKeyId")
    )


def _topic(reader: ResourceReader, found: Inventory, region: str, arn: str) -> None:
    attributes = reader.client("sns", region).get_topic_attributes(TopicArn=arn)["Attributes"]
    found.at_rest.append(
        AtRest(region, "topic", arn, "AWS::SNS::Topic", attributes.get("KmsMasterKeyId"), "no KmsMasterKeyId")
    )
    if attributes.get("Policy"):
        found.policies.append(Policy(region, arn, policy_contract("AWS::SNS::Topic"), json.loads(attributes["Policy"])))


def _bucket(reader: ResourceReader, found: Inventory, region: str, name: str) -> None:
    s3 = reader.client("s3", region)
    try:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError:
        rules = []
    key = next((r["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID") for r in rules), None)
    found.at_rest.append(AtRest(region, "bucket", name, "AWS::S3::Bucket", key, "no default KMS key"))
    try:
        policy = s3.get_bucket_policy(Bucket=name)["Policy"]
    except ClientError:
        return
    found.policies.append(
        Policy(region, f"arn:aws:s3:::{name}", policy_contract("AWS::S3::Bucket"), json.loads(policy))
    )


def _trail(reader: ResourceReader, found: Inventory, region: str, name: str) -> None:
    trails = reader.client("cloudtrail", region).describe_trails(trailNameList=[name])["trailList"]
    assert trails, f"the trail {name} of {region} is not there"
    found.at_rest.append(
        AtRest(region, "trail log files", name, "AWS::CloudTrail::Trail", trails[0].get("KmsKeyId"), "no KmsKeyId")
    )


def _global_table(reader: ResourceReader, found: Inventory, _home: str, name: str) -> None:
    """Every replica: the table as DescribeTable answers it in each region of the deployment."""
    for region in reader.regions:
        ddb = reader.client("dynamodb", region)
        try:
            table = ddb.describe_table(TableName=name)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            continue
        sse = table.get("SSEDescription") or {}
        key = sse.get("KMSMasterKeyArn") if sse.get("SSEType") == "KMS" else None
        found.at_rest.append(
            AtRest(
                region,
                "table replica",
                table["TableArn"],
                "AWS::DynamoDB::GlobalTable",
                key,
                f"SSE {sse or 'with the AWS owned key'}",
            )
        )
        try:
            policy = ddb.get_resource_policy(ResourceArn=table["TableArn"])["Policy"]
        except ddb.exceptions.PolicyNotFoundException:
            continue
        found.policies.append(
            Policy(region, table["TableArn"], policy_contract("AWS::DynamoDB::GlobalTable"), json.loads(policy))
        )


def _secret(reader: ResourceReader, found: Inventory, region: str, arn: str) -> None:
    """The secret and each replica (ReplicationStatus names the replica's key)."""
    client = reader.client("secretsmanager", region)
    secret = client.describe_secret(SecretId=arn)
    default = "no KmsKeyId: the AWS managed key aws/secretsmanager"
    found.at_rest.append(AtRest(region, "secret", arn, "AWS::SecretsManager::Secret", secret.get("KmsKeyId"), default))
    for replica in secret.get("ReplicationStatus", []):
        where = replica["Region"]
        copy = arn.replace(f":{region}:", f":{where}:")
        found.at_rest.append(
            AtRest(where, "secret replica", copy, "AWS::SecretsManager::Secret", replica.get("KmsKeyId"), default)
        )
    policy = client.get_resource_policy(SecretId=arn).get("ResourcePolicy")
    if policy:
        found.policies.append(Policy(region, arn, policy_contract("AWS::SecretsManager::Secret"), json.loads(policy)))


def _cluster(reader: ResourceReader, found: Inventory, region: str, name: str) -> None:
    (cluster,) = reader.client("rds", region).describe_db_clusters(DBClusterIdentifier=name)["DBClusters"]
    key = cluster.get("KmsKeyId") if cluster.get("StorageEncrypted") else None
    found.at_rest.append(
        AtRest(region, "cluster", cluster["DBClusterArn"], "AWS::RDS::DBCluster", key, "storage not encrypted")
    )


def _instance(reader: ResourceReader, found: Inventory, region: str, name: str) -> None:
    (instance,) = reader.client("rds", region).describe_db_instances(DBInstanceIdentifier=name)["DBInstances"]
    if instance.get("PerformanceInsightsEnabled"):
        found.at_rest.append(
            AtRest(
                region,
                "Performance Insights store of",
                name,
                "AWS::RDS::DBInstance",
                instance.get("PerformanceInsightsKMSKeyId"),
                "no PerformanceInsightsKMSKeyId",
            )
        )


def _role(reader: ResourceReader, found: Inventory, region: str, name: str) -> None:
    role = reader.client("iam", region).get_role(RoleName=name)["Role"]
    document = role["AssumeRolePolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    found.policies.append(Policy(region, role["Arn"], role_trust_contract(str(role["RoleName"])), document))


def _function(reader: ResourceReader, found: Inventory, region: str, name: str) -> None:
    client = reader.client("lambda", region)
    try:
        answer = client.get_policy(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        return  # no resource policy
    arn = f"arn:aws:lambda:{region}:{reader.account}:function:{name}"
    found.policies.append(Policy(region, arn, policy_contract("AWS::Lambda::Function"), json.loads(answer["Policy"])))


READERS: dict[str, Callable[[ResourceReader, Inventory, str, str], None]] = {
    "AWS::Logs::LogGroup": _log_group,
    "AWS::SNS::Topic": _topic,
    "AWS::DynamoDB::GlobalTable": _global_table,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::RDS::DBCluster": _cluster,
    "AWS::RDS::DBInstance": _instance,
    "AWS::IAM::Role": _role,
    "AWS::Lambda::Function": _function,
    "AWS::S3::Bucket": _bucket,
    "AWS::CloudTrail::Trail": _trail,
}


# -- judging ----------------------------------------------------------------------------------------
@cache
def catalogue(service: str) -> tuple[str, ...]:
    """Every action of the service: its API's operations (botocore's model) and the IAM-only ones."""
    operations = botocore.session.get_session().get_service_model(service).operation_names
    return tuple(f"{service}:{name}" for name in sorted({*operations, *IAM_ONLY_ACTIONS.get(service, ())}))


def _open(key: str) -> bool:
    """A key the outsider chooses (left open: any value it needs), not a fact of who asks."""
    return key.lower() not in CALLER_FACTS


def _grant(document: Any, request: Request) -> str | None:
    """The statement that lets the request through for some choice of its open keys, or None
    (a Deny that surely applies wins; an Allow the engine cannot decide counts as a grant)."""
    grants: list[str] = []
    for index, stmt in enumerate(statements(document)):
        m = match_statement(stmt, request, resource_policy=True, open_key=_open)
        if stmt.get("Effect") == "Deny":
            if m.outcome == MATCH and not m.requires:
                return None
        elif m.outcome == MATCH:
            grants.append(f"statement {sid(stmt, index)}")
        elif m.outcome == UNKNOWN:
            grants.append(f"statement {sid(stmt, index)} (not understood: {'; '.join(m.unknown)})")
    return grants[0] if grants else None


def outsiders(policy: Policy, account: str) -> Iterator[tuple[str, Callable[[str], Request]]]:
    """(who, request for an action): the root and a role of every other account (the outside one
    and any the policy names), and each service principal it names acting for the outside one."""
    for other in sorted({OUTSIDE_ACCOUNT} | named_accounts(policy.document) - {account}):
        for arn in (f"arn:aws:iam::{other}:root", f"arn:aws:iam::{other}:role/outsider"):
            caller = Caller(other, arn=arn)
            yield arn, _requester(caller, policy.resource, {"kms:CallerAccount": other})
    if not policy.contract.deputies:
        return
    region, other = policy.region, OUTSIDE_ACCOUNT
    named = {p for s in statements(policy.document) for p in _service_principals(s)}
    for service in sorted(named):
        facts = {
            "aws:SourceAccount": other,
            "aws:SourceArn": f"arn:aws:{service.split('.')[0]}:{region}:{other}:outside",
        }
        for pattern, extra in SERVICE_FACTS.items():
            if pattern.format(region=region) == service:
                facts |= {k: v.format(region=region, account=other) for k, v in extra.items()}
        yield (
            f"{service} acting for account {other}",
            _requester(Caller(other, service=service), policy.resource, facts),
        )


def _requester(caller: Caller, resource: str, facts: dict[str, str]) -> Callable[[str], Request]:
    return lambda action: Request(caller, action, resource, facts)


def _service_principals(stmt: Mapping[str, Any]) -> list[str]:
    principal = stmt.get("Principal")
    if not isinstance(principal, Mapping) or stmt.get("Effect") != "Allow":
        return []
    services = principal.get("Service", [])
    return [str(s) for s in (services if isinstance(services, list) else [services])]


def outsider_grants(policy: Policy, account: str) -> list[str]:
    """What the policy lets outsiders do, as "statement X lets WHO: a, b, c"."""
    granted: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for who, request in outsiders(policy, account):
        by_statement: dict[str, list[str]] = {}
        for action in catalogue(policy.contract.service):
            via = _grant(policy.document, request(action))
            if via is not None:
                by_statement.setdefault(via, []).append(action)
        for via, actions in by_statement.items():
            granted.setdefault((via, tuple(actions)), []).append(who)
    out = []
    for (via, actions), whom in granted.items():
        shown = ", ".join(actions[:4]) + (f" and {len(actions) - 4} more" if len(actions) > 4 else "")
        out.append(f"{via} lets {' and '.join(whom)}: {shown}")
    return out


def policy_problems(reader: ResourceReader, policy: Policy) -> list[str]:
    roles = reader.roles(policy.region)
    found = principal_problems(policy.document, policy.contract, reader.account, policy.region, roles)
    # The principals an application role trusts are outsiders by design (applicationPrincipals).
    found += [] if policy.contract.named_iam_principals else outsider_grants(policy, reader.account)
    return [f"{policy.resource} ({policy.contract.kind}): {problem}" for problem in found]


def key_problem(reader: ResourceReader, item: AtRest) -> str | None:
    """Why ``item`` is not encrypted with a customer-managed key of this account and its region."""
    if not item.key:
        return f"{item.resource}: not encrypted with a customer-managed key ({item.missing})"
    if "alias/aws/" in item.key:
        return f"{item.resource}: encrypted with the AWS managed key {item.key}"
    try:
        meta = reader.key(item.region, item.key)
    except ClientError as error:
        return f"{item.resource}: its key {item.key} cannot be described ({error.response['Error']['Code']})"
    arn = meta["Arn"]
    if meta.get("KeyManager") != "CUSTOMER":
        return f"{item.resource}: encrypted with {arn}, managed by {meta.get('KeyManager')}, not the customer"
    if arn.split(":")[4] != reader.account:
        return f"{item.resource}: encrypted with {arn}, a key of account {arn.split(':')[4]}"
    if arn.split(":")[3] != item.region:
        return f"{item.resource}: encrypted with {arn}, a key of {arn.split(':')[3]}, not of {item.region}"
    return None


# -- the checks -------------------------------------------------------------------------------------
def _unknown(inventory: Inventory, region: str) -> list[str]:
    return [
        f"{what}: a resource of a kind the contract does not know"
        for where, what in inventory.unknown
        if where == region
    ]


def policies_check(reader: ResourceReader, region: str) -> str:
    inventory = reader.inventory()
    mine = [p for p in inventory.policies if p.region == region]
    problems = _unknown(inventory, region) + [line for p in mine for line in policy_problems(reader, p)]
    assert not problems, "; ".join(problems)
    kinds = Counter(p.contract.kind for p in mine)
    listed = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
    return f"{listed}: only their contract's principals; no action for outsiders ({OUTSIDE_ACCOUNT}, services for it)"


def at_rest_check(reader: ResourceReader, region: str) -> str:
    inventory = reader.inventory()
    mine = [item for item in inventory.at_rest if item.region == region]
    problems = _unknown(inventory, region) + [p for item in mine if (p := key_problem(reader, item))]
    assert not problems, "; ".join(problems)
    kinds = Counter(item.label.removesuffix(" of") for item in mine)
    listed = ", ".join(f"{kind} x{n}" for kind, n in sorted(kinds.items()))
    return f"{listed}: each with a customer-managed key of {region}"


def resource_checks(reader: ResourceReader) -> list[NamedCheck]:
    out: list[NamedCheck] = []
    for region in reader.regions:
        out += [
            (
                f"deployed: every resource policy in {region} names only its contract's principals",
                _bind(policies_check, reader, region),
            ),
            (
                f"deployed: everything at rest in {region} is encrypted with a customer-managed key of {region}",
                _bind(at_rest_check, reader, region),
            ),
        ]
    return out


def _bind(fn: Callable[[ResourceReader, str], str], reader: ResourceReader, region: str) -> Callable[[], str]:
    return lambda: fn(reader, region)
