"""The resource-policy and at-rest contract of every kind of resource the toolkit deploys (issue 19,
item 2), written once: what may appear in each resource policy, and what must be encrypted with a
customer-managed key of its own region.

Resource policies. Each policy names only the principals of its kind's contract: the account root
(key administration, and delegation to the account's IAM policies), the function roles of that
region where the kind allows them, and the kind's service principals. A ``*`` principal is allowed
only in a statement pinned to this account (a condition on ``aws:SourceAccount``,
``aws:PrincipalAccount``, ``kms:CallerAccount``, ``aws:SourceOwner`` equal to it, or on
``aws:SourceArn`` / ``aws:PrincipalArn`` naming an ARN of it). On top of that list, the policy
engine is asked whether an outsider gets any action of the service's catalogue: the root and a
role of :data:`OUTSIDE_ACCOUNT` (and of any other account the policy names), with every request key
they choose left open, and each service principal the policy names acting for that account
(``aws:SourceAccount``, ``aws:SourceArn`` and the facts the service sets, :data:`SERVICE_FACTS`).

Keys have one contract per use, and a key's use is what the deployment uses it for (a table
replica's SSE key is a table key...); a multi-region key is the records key; a key nothing uses
may name the account root only.

At rest: every log group, topic, table replica, secret (and each of its replicas), Aurora cluster,
Performance Insights store, the audit trail's bucket and its log files is encrypted with a
customer-managed key of this account and of its own region. A resource of a type this module does not
list fails both checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OUTSIDE_ACCOUNT = "999999999999"
UNUSED_KEY = "key nothing deployed uses"


@dataclass(frozen=True)
class PolicyContract:
    """Who may appear in one kind of resource policy. ``service``: whose action catalogue an
    outsider is probed with. ``deputies``: probe each named service principal acting for another
    account (False where a service can act only with a role someone in this account passed it)."""

    kind: str
    service: str
    root: bool = True
    function_roles: bool = False
    services: tuple[str, ...] = ()
    deputies: bool = True
    # Any IAM principal (an account id, an account root, a role or user ARN) may be named, for sts:AssumeRole
    # only: the application roles' trust policies name applicationPrincipals, which the deployment chose.
    named_iam_principals: bool = False

    def principals(self, account: str, region: str, roles: Iterable[str]) -> set[str]:
        out = {f"arn:aws:iam::{account}:root", account} if self.root else set()
        out |= set(roles) if self.function_roles else set()
        return out | {service.format(region=region) for service in self.services}


KEY_POLICIES: dict[str, PolicyContract] = {
    contract.kind: contract
    for contract in (
        PolicyContract("records key", "kms", function_roles=True),
        PolicyContract("table key", "kms", services=("dynamodb.amazonaws.com",)),
        PolicyContract("logs key", "kms", services=("logs.{region}.amazonaws.com",)),
        # EventBridge: the audit rules notify the alarm topic (cdk_constructs/audit_rules.py).
        PolicyContract("topic key", "kms", services=("cloudwatch.amazonaws.com", "events.amazonaws.com")),
        PolicyContract("trail key", "kms", services=("cloudtrail.amazonaws.com",)),
        PolicyContract("storage key", "kms"),
        PolicyContract("secrets key", "kms"),
        PolicyContract(UNUSED_KEY, "kms"),
    )
}
# What a key is, from what uses it (the type of the resource it encrypts).
KEY_USE = {
    "AWS::DynamoDB::GlobalTable": "table key",
    "AWS::Logs::LogGroup": "logs key",
    "AWS::SNS::Topic": "topic key",
    "AWS::RDS::DBCluster": "storage key",
    "AWS::RDS::DBInstance": "storage key",
    "AWS::SecretsManager::Secret": "secrets key",
    "AWS::CloudTrail::Trail": "trail key",
    "AWS::S3::Bucket": "trail key",  # the one bucket: the trail's
}
MULTI_REGION_KEY = "records key"

ALARM_TOPIC = PolicyContract("alarm topic policy", "sns", services=("cloudwatch.amazonaws.com", "events.amazonaws.com"))
TRAIL_BUCKET = PolicyContract("trail bucket policy", "s3", services=("cloudtrail.amazonaws.com",))
SECRET = PolicyContract("secret policy", "secretsmanager", function_roles=True)
TABLE = PolicyContract("table replica policy", "dynamodb", function_roles=True)
# Secrets Manager invokes the rotation function (its permissions name the secret and the account).
FUNCTION = PolicyContract("function policy", "lambda", root=True, services=("secretsmanager.amazonaws.com",))
ROLE_TRUST = PolicyContract(
    "role trust policy",
    "sts",
    root=False,
    services=("lambda.amazonaws.com", "vpc-flow-logs.amazonaws.com", "monitoring.rds.amazonaws.com"),
    deputies=False,
)

# README "The application roles": their trust policies name the configured principals and nothing else.
APPLICATION_TRUST = PolicyContract(
    "trust policy of the application roles", "sts", root=False, deputies=False, named_iam_principals=True
)
APPLICATION_ROLE_STEMS = ("ApplicationWriterRole", "ApplicationReaderRole")
_IAM_PRINCIPAL = re.compile(r"^\d{12}$|^arn:aws[a-z-]*:iam::\d{12}:(?:root|role/[\w+=,.@/-]+|user/[\w+=,.@/-]+)$")


def role_trust_contract(role_name: str) -> PolicyContract:
    """An application role's (by its generated name, which holds its logical id) or any other role's."""
    return APPLICATION_TRUST if any(stem in role_name for stem in APPLICATION_ROLE_STEMS) else ROLE_TRUST


@dataclass(frozen=True)
class ResourceKind:
    """What the contract asks of one resource type: its resource policy (``policy``: a
    :class:`PolicyContract`, or "key" for a key's per-use contract), whether it holds data at rest,
    or why it has neither (``note``)."""

    policy: PolicyContract | str | None = None
    at_rest: bool = False
    note: str = ""


_NETWORK = ResourceKind(note="network configuration: no resource policy, no data")
KINDS: dict[str, ResourceKind] = {
    "AWS::KMS::Key": ResourceKind(policy="key"),
    "AWS::KMS::ReplicaKey": ResourceKind(policy="key"),
    "AWS::KMS::Alias": ResourceKind(note="a name for a key"),
    "AWS::DynamoDB::GlobalTable": ResourceKind(policy=TABLE, at_rest=True),
    "AWS::Logs::LogGroup": ResourceKind(at_rest=True, note="log groups carry no resource policy of their own"),
    "AWS::SNS::Topic": ResourceKind(policy=ALARM_TOPIC, at_rest=True),
    "AWS::SNS::TopicPolicy": ResourceKind(note="read back as its topic's Policy attribute"),
    "AWS::SecretsManager::Secret": ResourceKind(policy=SECRET, at_rest=True),
    "AWS::RDS::DBCluster": ResourceKind(at_rest=True, note="no resource policy"),
    "AWS::RDS::DBInstance": ResourceKind(at_rest=True, note="its storage is the cluster's; Performance Insights"),
    "AWS::RDS::GlobalCluster": ResourceKind(note="no key of its own: its member clusters' storage is checked"),
    "AWS::RDS::DBSubnetGroup": _NETWORK,
    "AWS::RDS::DBClusterParameterGroup": ResourceKind(note="database parameters: no data"),
    "AWS::IAM::Role": ResourceKind(policy=ROLE_TRUST),
    "AWS::IAM::ManagedPolicy": ResourceKind(note="an identity policy, not a resource policy"),
    "AWS::IAM::Policy": ResourceKind(note="an identity policy, not a resource policy"),
    "AWS::Lambda::Function": ResourceKind(policy=FUNCTION, note="its environment holds names and ARNs only"),
    "AWS::CloudWatch::Alarm": ResourceKind(note="no resource policy, no data"),
    "AWS::CloudWatch::Dashboard": ResourceKind(note="no resource policy, no data"),
    "AWS::EC2::VPC": _NETWORK,
    "AWS::EC2::Subnet": _NETWORK,
    "AWS::EC2::RouteTable": _NETWORK,
    "AWS::EC2::SubnetRouteTableAssociation": _NETWORK,
    "AWS::EC2::SecurityGroup": _NETWORK,
    "AWS::EC2::SecurityGroupIngress": _NETWORK,
    "AWS::EC2::SecurityGroupEgress": _NETWORK,
    "AWS::EC2::VPCPeeringConnection": _NETWORK,
    "AWS::EC2::Route": _NETWORK,
    "AWS::EC2::FlowLog": ResourceKind(note="writes to a log group (checked as a log group)"),
    "AWS::EC2::VPCEndpoint": ResourceKind(note="an endpoint policy limits what passes the endpoint, grants nothing"),
    "AWS::S3::Bucket": ResourceKind(policy=TRAIL_BUCKET, at_rest=True),
    "AWS::S3::BucketPolicy": ResourceKind(note="read back as its bucket's policy"),
    "AWS::CloudTrail::Trail": ResourceKind(at_rest=True, note="its log files are encrypted with its KMS key"),
    "AWS::Events::Rule": ResourceKind(note="a pattern and its targets: no resource policy, no data"),
    "AWS::SSM::Parameter": ResourceKind(
        note="a discovery String parameter (a name, ARN or endpoint, nothing secret): no resource policy; who may "
        "read it is the roles' contracts"
    ),
    "AWS::Lambda::Permission": ResourceKind(note="read back as its function's policy (Lambda GetPolicy)"),
    "AWS::SecretsManager::RotationSchedule": ResourceKind(note="read back as its secret's rotation (DescribeSecret)"),
    "AWS::SecretsManager::SecretTargetAttachment": ResourceKind(note="adds the cluster's endpoint to its secret"),
    "Custom::RecordsSchema": ResourceKind(note="the schema it makes lives in the cluster"),
    "AWS::CDK::Metadata": ResourceKind(note="the CDK's version metadata"),
}


def policy_contract(type_name: str) -> PolicyContract:
    """The resource policy contract of a type whose policy is not a key's."""
    contract = KINDS[type_name].policy
    assert isinstance(contract, PolicyContract), f"{type_name} has no resource policy of its own kind"
    return contract


# Condition keys that say whose request it is: an outsider cannot choose them (absent unless the
# probe sets them). Every other key is left open: the outsider chooses it.
CALLER_FACTS = {
    *("aws:principalaccount", "aws:principalarn", "aws:principalorgid", "aws:principalorgpaths"),
    *("aws:principaltype", "aws:principalservicename", "aws:principalservicenameslist", "aws:userid"),
    *("aws:username", "aws:principalisawsservice", "aws:sourceaccount", "aws:sourcearn", "aws:sourceowner"),
    *("aws:sourceorgid", "aws:sourceorgpaths", "aws:resourceaccount", "kms:calleraccount"),
    "kms:encryptioncontext:aws:logs:arn",
}
# What a service principal's request carries when it acts for ``{account}`` (besides
# aws:SourceAccount and aws:SourceArn): CloudWatch Logs names the log group it encrypts for.
SERVICE_FACTS: Mapping[str, Mapping[str, str]] = {
    "logs.{region}.amazonaws.com": {
        "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:{region}:{account}:log-group:outside",
    },
}
# IAM actions that no API operation of the service is named after.
IAM_ONLY_ACTIONS = {
    "sts": ("TagSession", "SetSourceIdentity", "SetContext"),
    "lambda": ("InvokeFunction", "InvokeFunctionUrl"),
}

_ACCOUNT_KEYS = {"aws:sourceaccount", "aws:principalaccount", "kms:calleraccount", "aws:sourceowner"}
_ARN_KEYS = {"aws:sourcearn", "aws:principalarn"}
_PINNING_OPERATORS = {"StringEquals", "StringLike", "ArnEquals", "ArnLike"}
_ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def principal_entries(stmt: Mapping[str, Any]) -> list[str]:
    """The principals one statement names (``*`` for everyone), NotPrincipal's included."""
    raw = stmt.get("Principal", stmt.get("NotPrincipal"))
    if raw == "*":
        return ["*"]
    if isinstance(raw, Mapping):
        return [str(value) for values in raw.values() for value in as_list(values)]
    return [str(value) for value in as_list(raw)]


def pins_this_account(stmt: Mapping[str, Any], account: str) -> bool:
    """Does the statement's condition pin the request to ``account`` (every value of one pinning
    key names it: the account id, or an ARN whose account field it is)?"""
    for operator, pairs in (stmt.get("Condition") or {}).items():
        if operator not in _PINNING_OPERATORS or not isinstance(pairs, Mapping):
            continue
        for key, values in pairs.items():
            wanted = [str(v) for v in as_list(values)]
            if key.lower() in _ACCOUNT_KEYS and wanted and all(v == account for v in wanted):
                return True
            if key.lower() in _ARN_KEYS and wanted and all(v.split(":")[4:5] == [account] for v in wanted):
                return True
    return False


def named_accounts(document: Any) -> set[str]:
    """Every 12-digit account id the policy names, anywhere in it."""
    return set(_ACCOUNT_ID.findall(str(document)))


def principal_problems(
    document: Any, contract: PolicyContract, account: str, region: str, roles: Iterable[str]
) -> list[str]:
    """The Allow statements that name a principal beyond the contract, or ``*`` unpinned."""
    allowed = contract.principals(account, region, roles)
    out: list[str] = []
    statements = [s for s in as_list((document or {}).get("Statement")) if isinstance(s, Mapping)]
    for index, stmt in enumerate(statements):
        if stmt.get("Effect") != "Allow":
            continue
        sid = stmt.get("Sid") or f"Statement{index}"
        if "NotPrincipal" in stmt:
            out.append(f"statement {sid} allows everyone but {principal_entries(stmt)} (NotPrincipal)")
            continue
        if contract.named_iam_principals and set(map(str, as_list(stmt.get("Action")))) != {"sts:AssumeRole"}:
            out.append(f"statement {sid} allows {stmt.get('Action')}, not sts:AssumeRole alone")
        for principal in principal_entries(stmt):
            if contract.named_iam_principals and _IAM_PRINCIPAL.match(principal):
                continue
            if principal == "*" and not pins_this_account(stmt, account):
                out.append(f"statement {sid} allows principal * without a condition pinning account {account}")
            elif principal != "*" and principal not in allowed:
                out.append(f"statement {sid} names principal {principal}, not in the contract of a {contract.kind}")
    return out
