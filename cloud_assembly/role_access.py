"""Everything a deployed role may do, compared with its contract (cloud_assembly/contracts.py).

A ``DeploymentView`` is what a deployment holds, however it was read: the resources of its
stacks (with the ARNs IAM evaluates), its roles with their policies, and its key policies.
offline/verification/permissions.py reads one back through the AWS APIs; review/role_view.py
makes one from the synthesized templates. ``role_access`` then asks the policy engine every
request the role could make: every catalogued action (policy_engine/catalogue.py) and every
action its policies name, on every resource it could reach (the deployment's own in every
region, the same ARNs in another account, resources that are not the toolkit's, whatever its
policies name, and ``*``), each with the request variants that matter (for KMS: no encryption
context, the toolkit's, the toolkit's with one value changed, through Secrets Manager for each
secret; for DynamoDB: the attributes read). What is allowed beyond the contract, and what the
contract grants but is refused, are the findings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cloud_assembly.contracts import (
    AURORA,
    BEACON_MAC,
    DYNAMODB,
    OWN_BEACON_KEY,
    OWN_MRK,
    ROLE_TYPES,
    VERSION_ATTRIBUTES,
    Condition,
    Grant,
    ResourceKind,
    RoleContract,
    contract_for,
)
from lambda_src.record_crypto.settings import TENANT_KEY
from policy_engine import Caller, as_list, statements, wildcard_match
from policy_engine.catalogue import catalogue, service_of
from policy_engine.exhaustive import Outcome, Prefilter, Probe, decide_all

_HASH = re.compile(r"^(.+?)[0-9A-F]{8}$")
OTHER_ACCOUNTS = ("210987654321", "123456789013")  # another account: the first that is not ours


def stem_of(logical_id: str) -> str:
    """``RecordsWriterRole`` for ``RecordsWriterRole99E60813`` (CDK's hash suffix removed)."""
    match = _HASH.match(logical_id)
    return match.group(1) if match else logical_id


def arn_of(type_name: str, region: str, account: str, partition: str, physical_id: str) -> str | None:
    """The ARN IAM evaluates for requests on a resource, from its physical id (what CloudFormation's
    ListStackResources and ``Ref`` give); None for types no request names here."""
    base = f"arn:{partition}:{{}}:{region}:{account}:"
    if physical_id.startswith("arn:"):
        return physical_id
    return {
        "AWS::KMS::Key": base.format("kms") + f"key/{physical_id}",
        "AWS::KMS::ReplicaKey": base.format("kms") + f"key/{physical_id}",
        "AWS::DynamoDB::GlobalTable": base.format("dynamodb") + f"table/{physical_id}",
        "AWS::DynamoDB::Table": base.format("dynamodb") + f"table/{physical_id}",
        # As AWS reports a log group's ARN (and CloudFormation's Fn::GetAtt Arn): with ":*".
        "AWS::Logs::LogGroup": base.format("logs") + f"log-group:{physical_id}:*",
        "AWS::Lambda::Function": base.format("lambda") + f"function:{physical_id}",
        "AWS::EC2::SecurityGroup": base.format("ec2") + f"security-group/{physical_id}",
        "AWS::EC2::Subnet": base.format("ec2") + f"subnet/{physical_id}",
        "AWS::EC2::VPC": base.format("ec2") + f"vpc/{physical_id}",
        "AWS::RDS::DBCluster": base.format("rds") + f"cluster:{physical_id}",
        "AWS::RDS::DBInstance": base.format("rds") + f"db:{physical_id}",
        "AWS::RDS::GlobalCluster": f"arn:{partition}:rds::{account}:global-cluster:{physical_id}",
        "AWS::CloudWatch::Alarm": base.format("cloudwatch") + f"alarm:{physical_id}",
        # A parameter's name starts with "/" (the toolkit's all do: they are under a path).
        "AWS::SSM::Parameter": base.format("ssm") + f"parameter{physical_id}",
    }.get(type_name)


@dataclass(frozen=True)
class StackResource:
    stack: str
    region: str
    logical_id: str
    type: str
    arn: str | None

    @property
    def stem(self) -> str:
        return stem_of(self.logical_id)

    @property
    def label(self) -> str:
        return f"{self.stack}/{self.stem}"


@dataclass(frozen=True)
class DeployedRole:
    stack: str
    region: str
    logical_id: str
    arn: str
    policies: tuple[tuple[str, Any], ...]  # (policy name, document): managed and inline

    @property
    def stem(self) -> str:
        return stem_of(self.logical_id)


@dataclass
class DeploymentView:
    account: str
    partition: str
    resources: tuple[StackResource, ...]
    roles: tuple[DeployedRole, ...]
    key_policies: Mapping[str, Any]  # key ARN -> its key policy
    trust_policies: Mapping[str, Any] = field(default_factory=dict)  # role ARN -> its trust policy
    resource_tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # ARN -> its tags (keys)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def tag_values(self, tag: str) -> tuple[str, ...]:
        """Every value the deployment's resources give the tag ``tag`` (the tenants, for ``tenant``)."""
        return tuple(sorted({tags[tag] for tags in self.resource_tags.values() if tag in tags}))

    @cached_property
    def store(self) -> str:
        return AURORA if any(r.type == "AWS::RDS::GlobalCluster" for r in self.resources) else DYNAMODB

    @cached_property
    def record_context(self) -> dict[str, str]:
        """The encryption context the multi-region keys' policies require (StringEquals values);
        the roles' policies' where no key policy requires one (none at all: no request carries
        the toolkit's context, and a grant that needs it is refused)."""
        documents = [self.key_policies.get(arn) or {} for arn in resolve_all(OWN_MRK, self, regions=None)]
        documents += [doc for role in self.roles for _, doc in role.policies]
        return next((c for c in map(required_context, documents) if c), {})

    def resolve(self, kind: ResourceKind, region: str) -> tuple[str, ...]:
        key = (kind, region)
        if key not in self.cache:
            self.cache[key] = resolve_all(kind, self, regions=(region,))
        return self.cache[key]  # type: ignore[no-any-return]


def resolve_all(kind: ResourceKind, view: DeploymentView, *, regions: Sequence[str] | None) -> tuple[str, ...]:
    """The ARNs a symbolic resource names in these regions (None: every region)."""
    roles = [StackResource(r.stack, r.region, r.logical_id, ROLE_TYPES[0], r.arn) for r in view.roles]
    out = [
        _rewritten(kind, f"{r.arn.rsplit('/', 1)[0] if kind.parent else r.arn}{kind.suffix}")
        for r in (*view.resources, *roles)
        if r.arn
        and r.type in kind.types
        and (
            r.stem in kind.stems
            or (kind.stem_prefix and r.stem.startswith(kind.stem_prefix))
            or (kind.tagged and kind.tagged in view.resource_tags.get(r.arn, {}))
        )
        and (regions is None or r.region in regions)
    ]
    for pattern in kind.patterns:
        for region in regions or ("*",):
            out.append(pattern.format(partition=view.partition, region=region, account=view.account))
    return tuple(dict.fromkeys(out))


def _rewritten(kind: ResourceKind, arn: str) -> str:
    return re.sub(kind.rewrite[0], kind.rewrite[1], arn) if kind.rewrite else arn


def required_context(key_policy: Mapping[str, Any]) -> dict[str, str]:
    """The encryption context a key policy's statements require (StringEquals values)."""
    out: dict[str, str] = {}
    for stmt in statements(key_policy):
        for op, pairs in (stmt.get("Condition") or {}).items():
            for key, value in (pairs or {}).items():
                if op == "StringEquals" and key.lower().startswith("kms:encryptioncontext:"):
                    out[key.split(":", 2)[2]] = str(as_list(value)[0])
    return out


# -- what a role is asked ----------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    arn: str
    label: str  # how a finding names it
    resource_policy: tuple[str, Any] | None = None
    keys: Mapping[str, Any] = field(default_factory=dict)  # what a request on it carries: aws:ResourceTag/*

    @property
    def service(self) -> str:
        return self.arn.split(":")[2] if self.arn.count(":") >= 2 else "*"

    @property
    def region(self) -> str:
        return self.arn.split(":")[3] if self.arn.count(":") >= 3 else ""


@dataclass(frozen=True)
class Variant:
    """What a request carries besides its action and resource."""

    tag: str  # what a contract Condition names ("" for a request without special keys)
    label: str
    keys: Mapping[str, Any] = field(default_factory=dict)
    subject: str | None = None  # the secret a request through Secrets Manager is for
    tenant: str | None = None  # the encryption context's tenant (README "Tenants")


# Resources that are not the toolkit's, in the role's region and account (what they are called).
FOREIGN = {
    "kms": ("arn:{p}:kms:{r}:{a}:key/00000000-0000-0000-0000-000000000000", "a key"),
    "dynamodb": ("arn:{p}:dynamodb:{r}:{a}:table/not-the-toolkits", "a table"),
    "logs": ("arn:{p}:logs:{r}:{a}:log-group:not-the-toolkits:*", "a log group"),
    "secretsmanager": ("arn:{p}:secretsmanager:{r}:{a}:secret:not-the-toolkits-AbCdEf", "a secret"),
    "sns": ("arn:{p}:sns:{r}:{a}:not-the-toolkits", "a topic"),
    "lambda": ("arn:{p}:lambda:{r}:{a}:function:not-the-toolkits", "a function"),
    "iam": ("arn:{p}:iam::{a}:role/not-the-toolkits", "a role"),
    "rds": ("arn:{p}:rds:{r}:{a}:cluster:not-the-toolkits", "a database cluster"),
    "cloudwatch": ("arn:{p}:cloudwatch:{r}:{a}:alarm:not-the-toolkits", "an alarm"),
    "ec2": ("arn:{p}:ec2:{r}:{a}:network-interface/eni-not-the-toolkits", "a network interface"),
    "s3": ("arn:{p}:s3:::not-the-toolkits/*", "a bucket's objects"),
    "ssm": ("arn:{p}:ssm:{r}:{a}:parameter/not-the-toolkits/{r}", "another deployment's discovery path"),
}
# The ARN service of the resources an action's service acts on, where they differ.
RESOURCE_SERVICE = {"sts": "iam"}


def _other_account(account: str) -> str:
    return next(a for a in OTHER_ACCOUNTS if a != account)


def _in_account(arn: str, account: str) -> str:
    parts = arn.split(":")
    return ":".join([*parts[:4], account, *parts[5:]]) if len(parts) > 5 and parts[4] else arn


def named_resources(policies: Iterable[tuple[str, Any]]) -> list[str]:
    out = []
    for _, doc in policies:
        for stmt in statements(doc):
            out += [str(r) for r in as_list(stmt.get("Resource")) if isinstance(r, str)]
    return out


def named_actions(policies: Iterable[tuple[str, Any]]) -> list[str]:
    out = []
    for _, doc in policies:
        for stmt in statements(doc):
            out += [str(a) for a in as_list(stmt.get("Action")) if isinstance(a, str) and "*" not in a]
    return out


def targets(role: DeployedRole, view: DeploymentView, grants: Sequence[Grant]) -> list[Target]:
    """Every resource the role is asked about, each once, named as a finding would say it."""
    other = _other_account(view.account)
    found: dict[str, Target] = {}

    def add(arn: str, label: str) -> None:
        if arn not in found:
            policy = view.key_policies.get(arn)
            resource_policy = ("key policy", policy) if policy is not None else None
            if arn in view.trust_policies:  # sts:AssumeRole: the trust policy must allow, as a key policy
                resource_policy = ("trust policy", view.trust_policies[arn])
            tags = {f"aws:ResourceTag/{k}": v for k, v in view.resource_tags.get(arn, {}).items()}
            found[arn] = Target(arn, label, resource_policy, tags)

    own = [(r.arn, r.label) for r in view.resources if r.arn]
    own += [(r.arn, f"{r.stack}/{r.stem}") for r in view.roles]
    for arn, label in own:
        add(arn, label)
    for grant in grants:
        for arn in view.resolve(grant.on, role.region):
            add(arn, grant.on.text)
    for grant in grants:  # what a grant names, in the other regions (a path, an index: not a resource of its own)
        for arn in resolve_all(grant.on, view, regions=None):
            add(arn, f"{grant.on.text} of another region")
    for _, (pattern, noun) in sorted(FOREIGN.items()):
        add(pattern.format(p=view.partition, r=role.region, a=view.account), f"{noun} that is not the toolkit's")
    for arn, label in own:
        add(_in_account(arn, other), f"{label}'s ARN in another account ({other})")
    for arn in named_resources(role.policies):
        add(arn, "named in its policy")
    add("*", "any resource (*)")
    return list(found.values())


def kms_variants(view: DeploymentView, key_region: str) -> list[Variant]:
    key = ("kms variants", key_region)
    if key not in view.cache:
        view.cache[key] = _kms_variants(view, key_region)
    return view.cache[key]  # type: ignore[no-any-return]


def _kms_variants(view: DeploymentView, key_region: str) -> list[Variant]:
    base = {"kms:CallerAccount": view.account}
    context = view.record_context

    def with_context(ctx: Mapping[str, str]) -> dict[str, Any]:
        keys: dict[str, Any] = {**base, **{f"kms:EncryptionContext:{k}": v for k, v in ctx.items()}}
        if ctx:
            keys["kms:EncryptionContextKeys"] = sorted(ctx)
        return keys

    out = [Variant("no-context", "without an encryption context", with_context({}))]
    if context:
        out.append(Variant("record-context", "with the toolkit's encryption context", with_context(context)))
        # With tenants: the toolkit's context naming each tenant (a tenant key's policy requires it).
        for tenant in view.tag_values(TENANT_KEY):
            label = f"with the toolkit's encryption context for tenant {tenant}"
            tenant_context = {**context, TENANT_KEY: tenant}
            out.append(Variant("record-context", label, with_context(tenant_context), tenant=tenant))
        for key in sorted(context):
            changed = {**context, key: f"not-{context[key]}"}
            out.append(
                Variant("foreign-context", f"with the toolkit's context but another {key}", with_context(changed))
            )
    if resolve_all(OWN_BEACON_KEY, view, regions=None):
        # With a beacon key: a MAC request names its algorithm (the key policy allows one).
        out.append(Variant(BEACON_MAC.variant, "with HMAC_SHA_256", {**base, "kms:MacAlgorithm": "HMAC_SHA_256"}))
        out.append(Variant("mac-other", "with HMAC_SHA_512", {**base, "kms:MacAlgorithm": "HMAC_SHA_512"}))
    via = f"secretsmanager.{key_region}.{'amazonaws.com.cn' if view.partition == 'aws-cn' else 'amazonaws.com'}"
    secrets = [r for r in view.resources if r.type == "AWS::SecretsManager::Secret" and r.region == key_region]
    foreign = FOREIGN["secretsmanager"][0].format(p=view.partition, r=key_region, a=view.account)
    for arn, label in [*((r.arn, r.label) for r in secrets if r.arn), (foreign, "a secret that is not the toolkit's")]:
        keys = {**base, "kms:ViaService": via, "kms:EncryptionContext:SecretARN": arn}
        keys["kms:EncryptionContextKeys"] = ["SecretARN"]
        out.append(Variant("via-secretsmanager", f"through Secrets Manager for {label}", keys, subject=arn))
    return out


DYNAMODB_VARIANTS = (
    Variant("all-attributes", "every attribute", {"dynamodb:Select": "ALL_ATTRIBUTES"}),
    Variant(
        "version-attributes",
        "projecting id and _version",
        {"dynamodb:Attributes": list(VERSION_ATTRIBUTES), "dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
    ),
    Variant(
        "more-attributes",
        "projecting id, _version and another attribute",
        {"dynamodb:Attributes": [*VERSION_ATTRIBUTES, "name"], "dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
    ),
)
PLAIN = (Variant("", ""),)


def sts_variants(view: DeploymentView) -> Sequence[Variant]:
    """With tenants: AssumeRole and TagSession untagged, tagged ``tenant`` only, and tagged
    ``tenant`` and another key (a trust policy decides on aws:RequestTag/* and aws:TagKeys)."""
    tenants = view.tag_values(TENANT_KEY)
    if not tenants:
        return PLAIN
    tagged = {f"aws:RequestTag/{TENANT_KEY}": tenants[0], "aws:TagKeys": [TENANT_KEY]}
    more = {**tagged, "aws:RequestTag/team": "any", "aws:TagKeys": [TENANT_KEY, "team"]}
    return (
        Variant("", "without session tags"),
        Variant("session-tag", f"tagging the session {TENANT_KEY}={tenants[0]}", tagged),
        Variant("more-session-tags", f"tagging the session {TENANT_KEY}={tenants[0]} and team=any", more),
    )


@dataclass(frozen=True)
class Asked:
    target: Target
    variant: Variant
    outcome: Outcome
    session: tuple[str, str] | None = None  # the session tag the request was made with (tag, value)

    @property
    def label(self) -> str:
        tagged = f"as a session tagged {self.session[0]}={self.session[1]}" if self.session else ""
        return ", ".join(x for x in (self.variant.label, tagged) if x)

    @property
    def action(self) -> str:
        return self.outcome.probe.action

    @property
    def allowed(self) -> bool:
        return self.outcome.decision.allowed


def _pools(actions: Sequence[str], found: Sequence[Target]) -> Iterable[tuple[str, list[Target]]]:
    """Each action with the targets of its service (and ``*``; the ``*`` action: all)."""
    by_service: dict[str, list[Target]] = {}
    for target in found:
        by_service.setdefault(target.service, []).append(target)
    pools: dict[str, list[Target]] = {"*": list(found)}
    for action in actions:
        service = service_of(action)
        if service not in pools:
            pools[service] = [*by_service.get(RESOURCE_SERVICE.get(service, service), []), *by_service.get("*", [])]
        yield action, pools[service]


def _variants(action: str, target: Target, view: DeploymentView, role: DeployedRole) -> Sequence[Variant]:
    service = service_of(action)
    if service == "kms":
        return kms_variants(view, target.region or role.region)
    if service == "sts":
        return sts_variants(view)
    return DYNAMODB_VARIANTS if service == "dynamodb" else PLAIN


def sessions(contract: RoleContract | None, view: DeploymentView) -> list[tuple[str, str] | None]:
    """Who the role's requests are made as: the role (None), or, for a role whose sessions carry a
    tag (a tenant-access role), an untagged session and a session tagged with each value."""
    if contract is None or not contract.session_tag:
        return [None]
    return [None, *((contract.session_tag, value) for value in view.tag_values(contract.session_tag))]


def ask(
    role: DeployedRole, view: DeploymentView, grants: Sequence[Grant], session: tuple[str, str] | None = None
) -> tuple[list[Asked], int]:
    """Every request the role could make (as a session tagged ``session``, when given), decided
    (key and role policies together), and how many there are. An action no Allow statement could
    cover, and that no grant names, is refused on every resource without building its requests
    (policy_engine/exhaustive.py's prefilter)."""
    caller = Caller(view.account, arn=role.arn, partition=view.partition)
    principal_tags = {f"aws:PrincipalTag/{session[0]}": session[1]} if session else {}
    prefilter = Prefilter(caller, role.policies)
    granted = {a.lower() for grant in grants for a in grant.actions}
    actions = list(dict.fromkeys([*catalogue(), *named_actions(role.policies)]))
    plan: list[tuple[Target, Variant, Probe]] = []
    total = 0
    counts: dict[tuple[str, int], int] = {}
    policies: dict[int, list[tuple[str, Any] | None]] = {}
    for action, pool in _pools(actions, targets(role, view, grants)):
        if id(pool) not in policies:
            distinct = {id(t.resource_policy[1]): t.resource_policy for t in pool if t.resource_policy}
            policies[id(pool)] = [None, *distinct.values()]
        if action.lower() not in granted and not any(prefilter.could_allow(action, p) for p in policies[id(pool)]):
            key = (service_of(action), id(pool))
            if key not in counts:
                counts[key] = sum(len(_variants(action, t, view, role)) for t in pool)
            total += counts[key]
            continue
        for target in pool:
            for variant in _variants(action, target, view, role):
                total += 1
                policy = target.resource_policy
                keys = {**variant.keys, **target.keys, **principal_tags}
                plan.append((target, variant, Probe(action, target.arn, keys, policy, policy is not None)))
    outcomes = decide_all(caller, role.policies, [p for _, _, p in plan])
    return [Asked(t, v, o, session) for (t, v, _), o in zip(plan, outcomes, strict=True)], total


# -- against the contract ----------------------------------------------------------------------
def _accepts(condition: Condition, asked: Asked, view: DeploymentView, region: str) -> bool:
    variant = asked.variant
    if not condition.variant:
        return True
    if variant.tag != condition.variant:
        return False
    if condition.session_tenant:
        # One tenant: the session's tag, the context's tenant and the key's tag.
        tenant = asked.session[1] if asked.session and asked.session[0] == TENANT_KEY else None
        key_tenant = asked.target.keys.get(f"aws:ResourceTag/{TENANT_KEY}")
        return tenant is not None and variant.tenant == tenant and key_tenant == tenant
    return condition.subject is None or variant.subject in view.resolve(condition.subject, region)


def _on(kind: ResourceKind, arn: str, view: DeploymentView, region: str) -> bool:
    """Is ``arn`` one of the resources ``kind`` names (a pattern names every ARN it matches)?"""
    if arn in view.resolve(kind, region):
        return True
    patterns = (p.format(partition=view.partition, region=region, account=view.account) for p in kind.patterns)
    return any(wildcard_match(pattern, arn) for pattern in patterns)


def _grants(asked: Asked, grants: Sequence[Grant], view: DeploymentView, region: str) -> bool:
    action = asked.action.lower()
    return any(
        action in (a.lower() for a in grant.actions)
        and _on(grant.on, asked.target.arn, view, region)
        and _accepts(grant.when, asked, view, region)
        for grant in grants
    )


@dataclass
class RoleAccess:
    role: DeployedRole
    contract: RoleContract | None
    asked: list[Asked]  # the requests that could be allowed or that a grant names
    total: int  # every request asked (the others are refused: no Allow statement names them)
    beyond: list[Asked]  # allowed, not in the contract
    missing: list[Asked]  # in the contract, refused

    @property
    def title(self) -> str:
        what = self.contract.title if self.contract else f"the role {self.role.stack}/{self.role.stem}"
        return f"{what} in {self.role.region}"

    @property
    def evaluated(self) -> int:
        return sum(a.outcome.evaluated for a in self.asked)

    def failure(self, limit: int = 3) -> str | None:
        """What is wrong, in one line: the requests beyond the contract (grouped by action and
        resource, wildcard actions first, each with the statement that allows it) and the
        contract's grants refused."""
        who = f"{self.title} ({self.role.stack}/{self.role.logical_id})"
        parts = [f"{who} has no contract in cloud_assembly/contracts.py"] if self.contract is None else []
        if self.beyond:
            groups = _grouped(self.beyond)
            by_service: dict[str, list[str]] = {}
            for first, _ in groups:
                actions = by_service.setdefault(service_of(first.action), [])
                actions += [first.action] if first.action not in actions else []
            named = "; ".join(
                ", ".join(actions[:5]) + (f" and {len(actions) - 5} more" if len(actions) > 5 else "")
                for actions in by_service.values()
            )
            # One example per service first (a wildcard action where there is one), then the rest.
            firsts = list({service_of(first.action): (first, labels) for first, labels in reversed(groups)}.values())
            examples = [*reversed(firsts), *(g for g in groups if g not in firsts)][:limit]
            shown = "; ".join(f"{_text(first, labels)}, allowed by {_by(first)}" for first, labels in examples)
            more = f" (and {len(groups) - len(examples)} more)" if len(groups) > len(examples) else ""
            count = sum(len(a) for a in by_service.values())
            parts.append(
                f"{who} may do {len(self.beyond)} request(s) beyond its contract, {count} action(s) "
                f"({named}): {shown}{more}"
            )
        if self.missing:
            groups = _grouped(self.missing)
            shown = "; ".join(
                f"{_text(first, labels)} ({first.outcome.decision.reason})" for first, labels in groups[:limit]
            )
            more = f" (and {len(groups) - limit} more)" if len(groups) > limit else ""
            parts.append(f"{who} is refused what its contract grants: {shown}{more}")
        return ". ".join(parts) if parts else None

    def summary(self) -> str:
        allowed = sum(a.allowed for a in self.asked)
        actions = len({a.action for a in self.asked if a.allowed})
        return (
            f"{allowed} allowed requests ({actions} actions), all in its contract and all of it allowed; "
            f"{self.total} requests asked, {self.evaluated} evaluated by the policy engine"
        )


def _grouped(asked: Sequence[Asked]) -> list[tuple[Asked, list[str]]]:
    """The requests by (action, resource), wildcard actions first: each with its variants' labels."""
    groups: dict[tuple[str, str], list[Asked]] = {}
    for item in sorted(asked, key=lambda a: "*" not in a.action):
        groups.setdefault((item.action, item.target.arn), []).append(item)
    return [(items[0], [i.label for i in items if i.label]) for items in groups.values()]


def _text(asked: Asked, labels: Sequence[str]) -> str:
    target = asked.target
    where = target.arn if target.label == "named in its policy" else f"{target.label} ({target.arn})"
    return f"{asked.action} on {where}" + (f" ({' | '.join(labels)})" if labels else "")


def _by(asked: Asked) -> str:
    reason = asked.outcome.decision.reason
    return reason.removesuffix(" allows") if reason.endswith(" allows") else reason


def role_access(role: DeployedRole, view: DeploymentView) -> RoleAccess:
    contract = contract_for(role.stem)
    grants = contract.applies(view.store, tenants=bool(view.tag_values(TENANT_KEY))) if contract else ()
    asked: list[Asked] = []
    total = 0
    for session in sessions(contract, view):
        more, count = ask(role, view, grants, session)
        asked, total = asked + more, total + count
    expected = [_grants(a, grants, view, role.region) for a in asked]
    beyond = [a for a, e in zip(asked, expected, strict=True) if a.allowed and not e]
    missing = [a for a, e in zip(asked, expected, strict=True) if e and not a.allowed]
    return RoleAccess(role, contract, asked, total, beyond, missing)
