"""The toolkit's own cdk-nag 3 rule pack: what the stock packs do not scan.

cdk-nag's AwsSolutions/NIST/HIPAA/PCI rules, checkov and cfn-guard look at ``AWS::DynamoDB::Table``
and ``AWS::KMS::Key`` only: nothing checks the replicas of an ``AWS::DynamoDB::GlobalTable``, the
policy of an ``AWS::KMS::ReplicaKey`` or how far a multi-region key may be replicated. Rules:

- ``MrkToolkit-GT1``: every global table replica has point-in-time recovery.
- ``MrkToolkit-GT2``: every global table replica has deletion protection.
- ``MrkToolkit-GT3``: every replica is encrypted with a KMS key of the replica's own region.
- ``MrkToolkit-KMS1``: no key policy (replica or not) allows a wildcard (``*``) principal, and every
  replica key has a policy of its own.
- ``MrkToolkit-KMS2``: every replica key sets ``PendingWindowInDays`` (7-30).
- ``MrkToolkit-KMS3``: a multi-region primary allows ``kms:ReplicateKey`` only under a
  ``kms:ReplicaRegion`` condition naming explicit regions, each one the app deploys a replica key in
  (or, when given, one of ``replica_regions``).
- ``MrkToolkit-RDS1``: every RDS cluster is encrypted (``StorageEncrypted``) with a customer managed key
  of its own region (``KmsKeyId``; not another region's, not ``alias/aws/rds`` or the default), and an
  instance's Performance Insights too.
- ``MrkToolkit-RDS2``: every RDS cluster and global cluster has deletion protection.
- ``MrkToolkit-RDS3``: with an ``AWS::RDS::GlobalCluster`` in the app, every cluster is a member (the
  primary by ``Ref``, a secondary by identifier, in another region, same engine and version, no master
  credentials), and the global cluster is encrypted.
- ``MrkToolkit-RDS4``: every RDS cluster keeps automated backups for 7 days or more.
- ``MrkToolkit-AUD1``: an EventBridge rule that matches read-only CloudTrail events (``Decrypt``,
  ``GenerateDataKey``, ``Describe*``..., or a named filter on ``eventName``) is in the state
  ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`` (the only one they are delivered to).
- ``MrkToolkit-AUD2``: every CloudTrail trail is multi-region, logging, with log file validation, global
  service events and a KMS key.
- ``MrkToolkit-IAM1``: no identity policy allows a ``kms:``, ``dynamodb:``, ``rds:``, ``rds-db:`` or
  ``secretsmanager:`` action on a wildcard resource (a key policy's ``"*"`` means "this key" and is fine).
- ``MrkToolkit-IAM2``: reader roles cannot create ciphertext (``kms:GenerateDataKey*``,
  ``kms:Encrypt``) and writer roles cannot ``kms:Decrypt``, whether granted by an identity policy or
  a key policy; a managed policy defined outside the app, which cannot be checked, is a finding too.
  A writer's ``kms:Decrypt`` limited by ``kms:ViaService`` to Secrets Manager (reading its own database
  secret) is not a finding: a record's data key is never decrypted through a service.
  Roles are told apart by their IAM path (``/<prefix>/reader/``, ``/<prefix>/writer/``) or, without
  one, by a ``Reader``/``Writer`` construct in their path.
- ``MrkToolkit-TEN1``: a tenant's key (a key tagged ``tenant``, or a replica of one) exists only in its
  tenant's regions (``tenant_regions``, from the config), and a tenant primary may be replicated
  (``kms:ReplicaRegion``) only to them; a tagged key of a tenant not configured is a finding too.
  Finding: ``<tenant>:<region>``; ``<tenant>:Tags`` for a replica not tagged with its primary's tenant.
- ``MrkToolkit-TEN2``: an identity policy that allows a KMS use action (``Decrypt``,
  ``GenerateDataKey*``, ``Encrypt``, ``ReEncrypt*``, ``kms:*``, ``*``) on a tenant key (a reference to
  a key tagged ``tenant``; in an app with tenant keys, a wildcard resource or a multi-region key ARN,
  tenant alias or key pattern written out) requires, with
  ``StringEquals``, both ``aws:ResourceTag/tenant`` and ``kms:EncryptionContext:tenant`` to equal
  ``${aws:PrincipalTag/tenant}``. Finding: ``<statement>::<missing condition key>``.
- ``MrkToolkit-TEN3``: every statement of a tenant key's policy that allows a KMS use action requires
  ``kms:EncryptionContext:tenant`` equal to the key's tenant (``StringEquals``; a replica's tenant is
  its primary's). Finding: the statement.

Findings are reported per replica region, statement or action (``MrkToolkit-GT3[us-west-1]``), so an
acknowledgement covers exactly one of them. Usage (cdk-nag 3 is a validation plugin)::

    Validations.of(app).add_plugins(MrkToolkitChecks(app, verbose=True))
    Validations.of(table).acknowledge(Acknowledgment(id="MrkToolkit::MrkToolkit-GT1[us-west-1]", reason="..."))

Rules read the synthesized template of the resource's stack (so property overrides count) and fall
back to the L1 properties when there is none yet (``validate_scope`` before synth).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import CfnResource, Stack, Stage
from cdk_nag import IApplyRule, NagMessageLevel, NagPack, NagRuleCompliance
from constructs import IConstruct

from cloud_assembly.audit_events import KEY_USE_EVENTS, STATE_ALL_MANAGEMENT_EVENTS
from cloud_assembly.intrinsics import render_before_deploy
from lambda_src.record_crypto.settings import REGION_NAME, TENANT_KEY
from policy_engine import as_list, role_kind, statements

PACK_NAME = "MrkToolkit"

# A wildcard resource: "*", or an ARN whose resource part is only a wildcard ("key/*", "table/*",
# "secret:*", "dbuser:*/*").
_WILDCARD_RESOURCE_RE = re.compile(r"^(?:\*|[A-Za-z-]+[/:](?:\*|\*/\*))$")
# Reader roles must not be able to produce ciphertext under the records key (a forged record
# would then decrypt and verify); writer roles must not be able to read it back.
READER_FORBIDDEN = ("kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:Encrypt")
WRITER_FORBIDDEN = ("kms:Decrypt",)

Findings = NagRuleCompliance | list[str]


# -- small policy helpers ---------------------------------------------------------------------------
def _action_covers(pattern: Any, action: str) -> bool:
    return isinstance(pattern, str) and fnmatch.fnmatchcase(action.lower(), pattern.lower())


def _allows_action(stmt: Mapping[str, Any], action: str) -> bool:
    """Does this Allow statement grant ``action`` (Action patterns, or NotAction not excluding it)?"""
    if stmt.get("Effect") != "Allow":
        return False
    if "NotAction" in stmt:
        return not any(_action_covers(p, action) for p in as_list(stmt["NotAction"]))
    return any(_action_covers(p, action) for p in as_list(stmt.get("Action")))


def _allows_service(stmt: Mapping[str, Any], services: Sequence[str]) -> list[str]:
    """The actions of ``services`` (``kms``, ``dynamodb``) this Allow statement may grant."""
    if stmt.get("Effect") != "Allow":
        return []
    if "NotAction" in stmt:
        return [f"NotAction::{s}" for s in services]
    found = []
    for pattern in as_list(stmt.get("Action")):
        if not isinstance(pattern, str):
            continue
        service = pattern.split(":", 1)[0].lower() if ":" in pattern else pattern
        if service == "*" or service in services:
            found.append(pattern)
    return found


def _is_wildcard_resource(resource: Any) -> bool:
    if resource == "*":
        return True
    if isinstance(resource, str) and resource.startswith("arn:"):
        parts = resource.split(":", 5)
        return len(parts) == 6 and bool(_WILDCARD_RESOURCE_RE.match(parts[5]))
    return False


def _principal_is_wildcard(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(v == "*" for values in principal.values() for v in as_list(values))
    return False


def _stmt_id(stmt: Mapping[str, Any], index: int) -> str:
    sid = stmt.get("Sid")
    return sid if isinstance(sid, str) and sid else f"Statement{index}"


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# -- reading resources ------------------------------------------------------------------------------
class _TemplateReader:
    """Rendered properties of resources: from the synthesized template when there is one."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[int, dict[str, Any]]] = {}

    def _template(self, stack: Stack) -> dict[str, Any] | None:
        stage = Stage.of(stack)
        if stage is None or not stage.outdir:
            return None
        path = Path(stage.outdir) / stack.template_file
        if not path.is_file():
            return None
        mtime = path.stat().st_mtime_ns
        cached = self._cache.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, json.loads(path.read_text()))
            self._cache[path] = cached
        return cached[1]

    def resources(self, stack: Stack) -> dict[str, dict[str, Any]]:
        """Every resource of ``stack`` as ``{logical id: {"Type", "Properties"}}``."""
        template = self._template(stack)
        if template is not None:
            return template.get("Resources", {})
        out: dict[str, dict[str, Any]] = {}
        for construct in stack.node.find_all():
            if CfnResource.is_cfn_resource(construct) and Stack.of(construct) is stack:
                assert isinstance(construct, CfnResource)
                out[stack.resolve(construct.logical_id)] = {
                    "Type": construct.cfn_resource_type,
                    "Properties": self._rendered(construct),
                }
        return out

    @staticmethod
    def _rendered(node: CfnResource) -> dict[str, Any]:
        stack = Stack.of(node)
        return stack.resolve(node._render_properties(node._cfn_properties)) or {}

    def properties(self, node: CfnResource) -> dict[str, Any]:
        stack = Stack.of(node)
        template = self._template(stack)
        if template is not None:
            resource = template.get("Resources", {}).get(stack.resolve(node.logical_id))
            if resource is not None and resource.get("Type") == node.cfn_resource_type:
                return resource.get("Properties", {}) or {}
        return self._rendered(node)


@dataclass(frozen=True)
class _Context:
    reader: _TemplateReader
    replica_regions: tuple[str, ...] | None
    tenant_regions: Mapping[str, tuple[str, ...]] | None = None

    def deployed_replica_key_regions(self, node: CfnResource) -> set[str]:
        regions = set()
        for construct in node.node.root.node.find_all():
            if CfnResource.is_cfn_resource(construct):
                assert isinstance(construct, CfnResource)
                if construct.cfn_resource_type == "AWS::KMS::ReplicaKey":
                    region = Stack.of(construct).region
                    if isinstance(region, str) and REGION_NAME.match(region):
                        regions.add(region)
        return regions


# -- rules -----------------------------------------------------------------------------------------
def _replicas(props: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, replica in enumerate(as_list(props.get("Replicas"))):
        if isinstance(replica, Mapping):
            region = replica.get("Region")
            yield (region if isinstance(region, str) else f"Replica{index}"), replica


def _only_global_tables(check: Callable[[Mapping[str, Any], CfnResource, _Context], list[str]]) -> Any:
    def rule(node: CfnResource, ctx: _Context) -> Findings:
        if node.cfn_resource_type != "AWS::DynamoDB::GlobalTable":
            return NagRuleCompliance.NOT_APPLICABLE
        return check(ctx.reader.properties(node), node, ctx) or NagRuleCompliance.COMPLIANT

    return rule


@_only_global_tables
def replica_pitr(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    return [
        region
        for region, replica in _replicas(props)
        if not _is_true((replica.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled"))
    ]


@_only_global_tables
def replica_deletion_protection(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    return [region for region, replica in _replicas(props) if not _is_true(replica.get("DeletionProtectionEnabled"))]


_LOCAL = "<region-local>"  # a key id or alias name: DynamoDB looks it up in the replica's own region


def key_region(value: Any, stack_region: str, resources: Mapping[str, Any]) -> str | None:
    """The region of the KMS key a ``KMSMasterKeyId`` names; None when it cannot be told."""
    if isinstance(value, str):
        if value.startswith("arn:"):
            parts = value.split(":")
            return parts[3] if len(parts) > 5 and parts[3] else None
        return _LOCAL if value and "${" not in value else None
    if not isinstance(value, Mapping) or len(value) != 1:
        return None
    ((fn, arg),) = value.items()
    if fn == "Fn::GetStackOutput" and isinstance(arg, Mapping):
        region = arg.get("Region")
        if region == {"Ref": "AWS::Region"}:
            return stack_region
        return region if isinstance(region, str) else None
    if fn == "Ref":
        return stack_region if arg in resources else None
    if fn == "Fn::GetAtt":
        logical_id = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
        resource = resources.get(logical_id)
        # A strong cross-region reference reads an SSM parameter whose origin is not in the value.
        if resource is None or str(resource.get("Type", "")).startswith("Custom::"):
            return None
        return stack_region
    if fn == "Fn::ImportValue":
        return stack_region  # exports are imported from the same region only
    if fn in ("Fn::Join", "Fn::Sub"):
        text = render_before_deploy(value, stack_region)
        if text.startswith("arn:"):
            parts = text.split(":")
            return parts[3] if len(parts) > 5 and parts[3] and "?" not in parts[3] else None
        return _LOCAL if text and "?" not in text else None
    return None


@_only_global_tables
def replica_key_in_own_region(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    stack = Stack.of(node)
    resources = ctx.reader.resources(stack)
    sse = props.get("SSESpecification") or {}
    table_kms = _is_true(sse.get("SSEEnabled")) and str(sse.get("SSEType", "KMS")).upper() == "KMS"
    findings = []
    for region, replica in _replicas(props):
        key = (replica.get("SSESpecification") or {}).get("KMSMasterKeyId")
        where = key_region(key, stack.region, resources) if key is not None else None
        if not table_kms or where is None or (where != _LOCAL and where != region):
            findings.append(region)
    return findings


def _only_types(types: tuple[str, ...]) -> Callable[[Any], Any]:
    """A rule on the rendered properties of resources of ``types`` only."""

    def wrap(check: Callable[[Mapping[str, Any], CfnResource, _Context], list[str]]) -> Any:
        def rule(node: CfnResource, ctx: _Context) -> Findings:
            if node.cfn_resource_type not in types:
                return NagRuleCompliance.NOT_APPLICABLE
            return check(ctx.reader.properties(node), node, ctx) or NagRuleCompliance.COMPLIANT

        return rule

    return wrap


@_only_types(("AWS::KMS::Key", "AWS::KMS::ReplicaKey"))
def key_policy_no_wildcard_principal(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    policy = props.get("KeyPolicy")
    if node.cfn_resource_type == "AWS::KMS::ReplicaKey" and not statements(policy):
        return ["NoKeyPolicy"]
    return [
        _stmt_id(s, i)
        for i, s in enumerate(statements(policy))
        if s.get("Effect") == "Allow" and ("NotPrincipal" in s or _principal_is_wildcard(s.get("Principal")))
    ]


@_only_types(("AWS::KMS::ReplicaKey",))
def replica_key_pending_window(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    window = props.get("PendingWindowInDays")
    if isinstance(window, str) and window.isdigit():
        window = int(window)
    return [] if isinstance(window, int) and not isinstance(window, bool) and 7 <= window <= 30 else ["Missing"]


_REPLICA_REGION_OPERATORS = {"stringequals", "forallvalues:stringequals", "foranyvalue:stringequals"}


@_only_types(("AWS::KMS::Key",))
def primary_replication_scoped(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    if not _is_true(props.get("MultiRegion")):
        return []
    stmts = statements(props.get("KeyPolicy"))
    if not stmts:
        return ["DefaultKeyPolicy"]  # the default policy gives the account kms:* with no condition
    own_region = Stack.of(node).region
    allowed = set(ctx.replica_regions) if ctx.replica_regions is not None else ctx.deployed_replica_key_regions(node)
    allowed.discard(own_region)
    findings = []
    for index, stmt in enumerate(stmts):
        if not _allows_action(stmt, "kms:ReplicateKey"):
            continue
        values: list[Any] = []
        for operator, pairs in (stmt.get("Condition") or {}).items():
            for key, value in (pairs or {}).items():
                if key.lower() == "kms:replicaregion":
                    if operator.lower() not in _REPLICA_REGION_OPERATORS:
                        values.append(None)  # StringLike, negations...: not an explicit list
                    values.extend(as_list(value))
        explicit = bool(values) and all(isinstance(v, str) and REGION_NAME.match(v) for v in values)
        if not explicit or (allowed and not set(values) <= allowed):
            findings.append(_stmt_id(stmt, index))
    return findings


_IDENTITY_POLICY_TYPES = {
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::RolePolicy",
    "AWS::IAM::UserPolicy",
    "AWS::IAM::GroupPolicy",
}
_INLINE_POLICY_TYPES = {"AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"}


def _identity_documents(type_name: str, props: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(label, document) of every identity policy a resource defines."""
    if type_name in _IDENTITY_POLICY_TYPES:
        return [("", props.get("PolicyDocument"))]
    if type_name in _INLINE_POLICY_TYPES:
        return [
            (str(p.get("PolicyName", f"Policy{i}")), p.get("PolicyDocument"))
            for i, p in enumerate(as_list(props.get("Policies")))
            if isinstance(p, Mapping)
        ]
    return []


# Services whose permissions must name their resources (keys, tables, clusters, secrets).
_SCOPED_SERVICES = ("kms", "dynamodb", "rds", "rds-db", "secretsmanager")


def no_wildcard_resource(node: CfnResource, ctx: _Context) -> Findings:
    type_name = node.cfn_resource_type
    if type_name not in _IDENTITY_POLICY_TYPES | _INLINE_POLICY_TYPES:
        return NagRuleCompliance.NOT_APPLICABLE
    findings = []
    for label, document in _identity_documents(type_name, ctx.reader.properties(node)):
        for index, stmt in enumerate(statements(document)):
            actions = _allows_service(stmt, _SCOPED_SERVICES)
            if not actions:
                continue
            if "NotResource" in stmt or any(_is_wildcard_resource(r) for r in as_list(stmt.get("Resource"))):
                prefix = f"{label}/" if label else ""
                findings += [f"{prefix}{_stmt_id(stmt, index)}::{a}" for a in actions]
    return sorted(set(findings)) or NagRuleCompliance.COMPLIANT


def _forbidden(kind: str) -> tuple[str, ...]:
    return READER_FORBIDDEN if kind == "reader" else WRITER_FORBIDDEN


# kms:Decrypt a writer may hold: only through Secrets Manager (it reads its own database secret,
# which Secrets Manager decrypts with the caller's permission). A record's data key is decrypted by
# the function itself, never through a service, so such a grant cannot open a record.
def _only_via_secrets_manager(stmt: Mapping[str, Any]) -> bool:
    """Is the statement limited (StringEquals kms:ViaService) to Secrets Manager endpoints?"""
    for operator, pairs in (stmt.get("Condition") or {}).items():
        if operator.lower() != "stringequals":
            continue
        for key, value in (pairs or {}).items():
            if key.lower() == "kms:viaservice":
                values = as_list(value)
                return bool(values) and all(_via_secrets_manager(v) for v in values)
    return False


def _via_secrets_manager(value: Any) -> bool:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    # Rendered: "secretsmanager.us-east-2.amazonaws.com"; unrendered: a Join of "secretsmanager.<region>." and
    # the URL suffix. Either way the service part must be secretsmanager and nothing else.
    return text.startswith("secretsmanager.") or text.startswith('{"Fn::Join": ["", ["secretsmanager.')


def _forbidden_grants(kind: str, documents: list[tuple[str, Any]]) -> list[str]:
    found = []
    for _label, document in documents:
        for stmt in statements(document):
            if kind == "writer" and _only_via_secrets_manager(stmt):
                continue
            found += [f"{kind}::{action}" for action in _forbidden(kind) if _allows_action(stmt, action)]
    return found


def _local_ref(value: Any) -> str | None:
    return value["Ref"] if isinstance(value, Mapping) and isinstance(value.get("Ref"), str) else None


def _policy_name(arn: Any) -> str:
    match = re.search(r":policy/([\w+=,.@/-]+)", json.dumps(arn, sort_keys=True))
    return match.group(1) if match else "Unknown"


def _construct_paths(stack: Stack) -> dict[str, str]:
    paths = {}
    for construct in stack.node.find_all():
        if CfnResource.is_cfn_resource(construct) and Stack.of(construct) is stack:
            assert isinstance(construct, CfnResource)
            paths[stack.resolve(construct.logical_id)] = construct.node.path
    return paths


def reader_writer_separation(node: CfnResource, ctx: _Context) -> Findings:
    type_name = node.cfn_resource_type
    stack = Stack.of(node)
    props = ctx.reader.properties(node)
    findings: list[str] = []
    if type_name in ("AWS::KMS::Key", "AWS::KMS::ReplicaKey"):
        for index, stmt in enumerate(statements(props.get("KeyPolicy"))):
            named = json.dumps([stmt.get("Principal"), stmt.get("Condition")], sort_keys=True, default=str)
            for kind in ("reader", "writer"):
                if f"/{kind}/" in named.lower():
                    found = _forbidden_grants(kind, [("", {"Statement": [stmt]})])
                    findings += [f"{_stmt_id(stmt, index)}::{f}" for f in found]
    elif type_name in _IDENTITY_POLICY_TYPES:
        resources = ctx.reader.resources(stack)
        paths = _construct_paths(stack)
        for role in as_list(props.get("Roles")) + ([props.get("RoleName")] if "RoleName" in props else []):
            logical_id = _local_ref(role)
            role_res = resources.get(logical_id or "", {})
            if role_res.get("Type") != "AWS::IAM::Role":
                continue
            kind = role_kind((role_res.get("Properties") or {}).get("Path"), paths.get(logical_id or "", ""))
            if kind:
                findings += _forbidden_grants(kind, _identity_documents(type_name, props))
    elif type_name == "AWS::IAM::Role":
        kind = role_kind(props.get("Path"), node.node.path)
        if kind:
            documents = _identity_documents(type_name, props)
            resources = ctx.reader.resources(stack)
            for arn in as_list(props.get("ManagedPolicyArns")):
                local = resources.get(_local_ref(arn) or "", {})
                if local.get("Type") == "AWS::IAM::ManagedPolicy":
                    documents.append(("", (local.get("Properties") or {}).get("PolicyDocument")))
                else:
                    # A policy defined outside the app (e.g. AWS managed) cannot be checked here.
                    findings.append(f"{kind}::ManagedPolicy::{_policy_name(arn)}")
            findings += _forbidden_grants(kind, documents)
    else:
        return NagRuleCompliance.NOT_APPLICABLE
    return sorted(set(findings)) or NagRuleCompliance.COMPLIANT


# -- Aurora global database -------------------------------------------------------------------------
_AWS_MANAGED_ALIAS = re.compile(r"(^|:)alias/aws/")


def _customer_key_of_region(value: Any, node: CfnResource, ctx: _Context) -> bool:
    """Is ``value`` a customer managed key of the resource's own region (not an AWS managed alias)?"""
    if value is None or (isinstance(value, str) and _AWS_MANAGED_ALIAS.search(value)):
        return False
    stack = Stack.of(node)
    where = key_region(value, stack.region, ctx.reader.resources(stack))
    return where is not None and where in (_LOCAL, stack.region)


@_only_types(("AWS::RDS::DBCluster", "AWS::RDS::DBInstance"))
def rds_storage_key_in_own_region(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    if node.cfn_resource_type == "AWS::RDS::DBInstance":
        # An Aurora instance's storage is the cluster's; its Performance Insights data has a key of its own.
        if _is_true(props.get("EnablePerformanceInsights")) and not _customer_key_of_region(
            props.get("PerformanceInsightsKMSKeyId"), node, ctx
        ):
            return ["PerformanceInsightsKMSKeyId"]
        return []
    findings = []
    if not _is_true(props.get("StorageEncrypted")):
        findings.append("StorageEncrypted")
    if not _customer_key_of_region(props.get("KmsKeyId"), node, ctx):
        findings.append("KmsKeyId")
    return findings


@_only_types(("AWS::RDS::DBCluster", "AWS::RDS::GlobalCluster"))
def rds_deletion_protection(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    return [] if _is_true(props.get("DeletionProtection")) else ["DeletionProtection"]


def _global_clusters(node: CfnResource, ctx: _Context) -> dict[str, tuple[CfnResource, Mapping[str, Any]]]:
    """Every AWS::RDS::GlobalCluster of the app by its GlobalClusterIdentifier (or logical id)."""
    found: dict[str, tuple[CfnResource, Mapping[str, Any]]] = {}
    for construct in node.node.root.node.find_all():
        if CfnResource.is_cfn_resource(construct):
            assert isinstance(construct, CfnResource)
            if construct.cfn_resource_type == "AWS::RDS::GlobalCluster":
                props = ctx.reader.properties(construct)
                name = props.get("GlobalClusterIdentifier")
                key = name if isinstance(name, str) else Stack.of(construct).resolve(construct.logical_id)
                found[key] = (construct, props)
    return found


@_only_types(("AWS::RDS::DBCluster", "AWS::RDS::GlobalCluster"))
def rds_global_membership(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    if node.cfn_resource_type == "AWS::RDS::GlobalCluster":
        return [] if _is_true(props.get("StorageEncrypted")) else ["StorageEncrypted"]
    globals_ = _global_clusters(node, ctx)
    if not globals_:
        return []  # a regional cluster: the rule is about global databases
    value = props.get("GlobalClusterIdentifier")
    stack = Stack.of(node)
    local = _local_ref(value)
    if local is not None:
        resource = ctx.reader.resources(stack).get(local, {})
        return [] if resource.get("Type") == "AWS::RDS::GlobalCluster" else ["GlobalClusterIdentifier"]
    if isinstance(value, str) and value in globals_:
        global_node, global_props = globals_[value]
        findings = []
        if Stack.of(global_node).region == stack.region:
            findings.append("SameRegionAsPrimary")  # a secondary is in another region than the primary
        for prop in ("Engine", "EngineVersion"):
            if props.get(prop) != global_props.get(prop):
                findings.append(prop)
        if "MasterUsername" in props or "MasterUserPassword" in props:
            findings.append("MasterCredentials")  # a secondary takes the global cluster's
        return findings
    return ["GlobalClusterIdentifier"]


def _backup_days(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@_only_types(("AWS::RDS::DBCluster",))
def rds_backup_retention(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    days = _backup_days(props.get("BackupRetentionPeriod"))
    return [] if days is not None and days >= 7 else ["BackupRetentionPeriod"]


def _event_names(pattern: Any) -> Iterator[Any]:
    """Every value an ``eventName`` of the pattern may take (inside ``detail`` and ``$or`` too)."""
    if isinstance(pattern, Mapping):
        for key, value in pattern.items():
            if key == "eventName":
                yield from as_list(value)
            else:
                yield from _event_names(value)
    elif isinstance(pattern, list):
        for value in pattern:
            yield from _event_names(value)


_READ_ONLY_PREFIXES = ("Describe", "List", "Get")


@_only_types(("AWS::Events::Rule",))
def read_only_events_received(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    pattern = props.get("EventPattern")
    if isinstance(pattern, str):
        pattern = json.loads(pattern)
    if props.get("State", "ENABLED") == STATE_ALL_MANAGEMENT_EVENTS:
        return []
    read_only = sorted(
        {
            str(name)
            for name in _event_names(pattern)
            if not isinstance(name, Mapping) and (name in KEY_USE_EVENTS or str(name).startswith(_READ_ONLY_PREFIXES))
        }
    )
    # A named filter (anything-but, prefix...) may select read-only events too.
    if read_only or any(isinstance(name, Mapping) for name in _event_names(pattern)):
        return [read_only[0] if read_only else "Filter"]
    return []


@_only_types(("AWS::CloudTrail::Trail",))
def trail_complete(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    wanted = ("IsMultiRegionTrail", "EnableLogFileValidation", "IsLogging", "IncludeGlobalServiceEvents")
    missing = [name for name in wanted if not _is_true(props.get(name))]
    return missing + ([] if props.get("KMSKeyId") else ["KMSKeyId"])


# -- tenants --------------------------------------------------------------------------------------
_KEY_TYPES = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")
_KEY_USE: tuple[str, ...] = ("kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext")
_KEY_USE += ("kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKeyPair")
_SESSION_TENANT = f"${{aws:PrincipalTag/{TENANT_KEY}}}"


def _tag(props: Mapping[str, Any], key: str) -> str | None:
    for tag in as_list(props.get("Tags")):
        if isinstance(tag, Mapping) and tag.get("Key") == key:
            return str(tag.get("Value"))
    return None


def _allows_key_use(stmt: Mapping[str, Any]) -> list[str]:
    return [a for a in _KEY_USE if _allows_action(stmt, a)]


def _string_equals(stmt: Mapping[str, Any]) -> dict[str, Any]:
    conditions = stmt.get("Condition") or {}
    pairs = next((v for k, v in conditions.items() if k.lower() == "stringequals"), None) or {}
    return {k.lower(): v for k, v in pairs.items()}


@_only_types(_KEY_TYPES)
def tenant_key_in_tenant_regions(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    own, tenant = _tag(props, TENANT_KEY), _key_tenant(props, node, ctx)
    findings = [f"{tenant}:Tags"] if tenant is not None and own != tenant else []
    if tenant is None or ctx.tenant_regions is None:
        return findings
    allowed = set(ctx.tenant_regions.get(tenant, ()))
    region = Stack.of(node).region
    findings += [] if region in allowed else [f"{tenant}:{region}"]
    for stmt in statements(props.get("KeyPolicy")):
        if _allows_action(stmt, "kms:ReplicateKey"):
            for pairs in (stmt.get("Condition") or {}).values():
                for key, value in (pairs or {}).items():
                    if key.lower() == "kms:replicaregion":
                        findings += [f"{tenant}:{v}" for v in as_list(value) if v not in allowed]
    return sorted(set(findings))


def _key_tenant(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> str | None:
    """The tenant a key belongs to: a replica's is its primary's, whatever its own tags say (or if it
    has none); otherwise its tag ``tenant`` (None: not a tenant key)."""
    primary = _referenced(props.get("PrimaryKeyArn"), Stack.of(node), ctx)
    tenant = _tag(primary.get("Properties") or {}, TENANT_KEY) if primary is not None else None
    return tenant or _tag(props, TENANT_KEY)


def _referenced(value: Any, stack: Stack, ctx: _Context) -> Mapping[str, Any] | None:
    """The resource (``{"Type", "Properties"}``) a Ref, GetAtt or GetStackOutput names; None otherwise."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return None
    ((fn, arg),) = value.items()
    if fn in ("Ref", "Fn::GetAtt"):
        logical_id = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
        return ctx.reader.resources(stack).get(logical_id)
    if fn == "Fn::GetStackOutput" and isinstance(arg, Mapping):
        other = next((s for s in _stacks(stack) if s.stack_name == arg.get("StackName")), None)
        template = ctx.reader._template(other) if other is not None else None
        output = ((template or {}).get("Outputs") or {}).get(str(arg.get("OutputName"))) or {}
        return _referenced(output.get("Value"), other, ctx) if other is not None else None
    return None


def _is_tenant_key(resource: Mapping[str, Any] | None) -> bool:
    return (
        resource is not None
        and resource.get("Type") in _KEY_TYPES
        and _tag(resource.get("Properties") or {}, TENANT_KEY) is not None
    )


# Written out rather than referenced, what may be a tenant key in an app with tenant keys: a multi-region
# key's ARN (a tenant key's id is not known before deploy, so any ``mrk-`` key may be one: with tenants, no
# role of the toolkit uses the records key), a tenant alias, or a pattern over keys.
_LITERAL_TENANT_KEY_RE = re.compile(r":key/(?:mrk-|\*)|:alias/.*/tenant/|^arn:[^:]*:kms:.*\*")


def _names_tenant_key(value: Any, stack: Stack, ctx: _Context, tenant_keys_exist: bool) -> bool:
    """Does this Resource value name a tenant key (a reference to a key tagged ``tenant``: Ref, GetAtt,
    GetStackOutput), or, in an app with tenant keys, every key (a wildcard) or a key written out that may
    be one (``_LITERAL_TENANT_KEY_RE``, also inside an Fn::Join)?"""
    if isinstance(value, str):
        return tenant_keys_exist and (_is_wildcard_resource(value) or bool(_LITERAL_TENANT_KEY_RE.search(value)))
    referenced = _referenced(value, stack, ctx)
    if referenced is not None:
        return _is_tenant_key(referenced)
    joined = value.get("Fn::Join") if isinstance(value, Mapping) else None
    if tenant_keys_exist and isinstance(joined, list) and len(joined) == 2 and isinstance(joined[1], list):
        text = str(joined[0]).join(part if isinstance(part, str) else "?" for part in joined[1])
        return bool(_LITERAL_TENANT_KEY_RE.search(text))
    return False


def _stacks(stack: Stack) -> list[Stack]:
    return [c for c in stack.node.root.node.find_all() if isinstance(c, Stack)]


def _app_has_tenant_keys(node: CfnResource, ctx: _Context) -> bool:
    return any(_is_tenant_key(r) for stack in _stacks(Stack.of(node)) for r in ctx.reader.resources(stack).values())


def tenant_key_use_scoped(node: CfnResource, ctx: _Context) -> Findings:
    type_name = node.cfn_resource_type
    if type_name not in _IDENTITY_POLICY_TYPES | _INLINE_POLICY_TYPES:
        return NagRuleCompliance.NOT_APPLICABLE
    stack, tenant_keys_exist = Stack.of(node), _app_has_tenant_keys(node, ctx)
    findings = []
    for label, document in _identity_documents(type_name, ctx.reader.properties(node)):
        for index, stmt in enumerate(statements(document)):
            if not _allows_key_use(stmt):
                continue
            named = as_list(stmt.get("Resource")) if "NotResource" not in stmt else ["*"]
            if not any(_names_tenant_key(r, stack, ctx, tenant_keys_exist) for r in named):
                continue
            equals = _string_equals(stmt)
            for key in (f"aws:ResourceTag/{TENANT_KEY}", f"kms:EncryptionContext:{TENANT_KEY}"):
                if equals.get(key.lower()) not in (_SESSION_TENANT, [_SESSION_TENANT]):
                    findings.append(f"{label + '/' if label else ''}{_stmt_id(stmt, index)}::{key}")
    return sorted(set(findings)) or NagRuleCompliance.COMPLIANT


@_only_types(_KEY_TYPES)
def tenant_key_policy_bound(props: Mapping[str, Any], node: CfnResource, ctx: _Context) -> list[str]:
    tenant = _key_tenant(props, node, ctx)
    if tenant is None:
        return []
    return [
        _stmt_id(stmt, index)
        for index, stmt in enumerate(statements(props.get("KeyPolicy")))
        if _allows_key_use(stmt)
        and _string_equals(stmt).get(f"kms:EncryptionContext:{TENANT_KEY}".lower()) not in (tenant, [tenant])
    ]


@dataclass(frozen=True)
class Rule:
    suffix: str
    info: str
    explanation: str
    check: Callable[[CfnResource, _Context], Findings]


RULES: tuple[Rule, ...] = (
    Rule(
        "GT1",
        "A DynamoDB global table replica does not have point-in-time recovery enabled.",
        "Every replica is a full copy of the records; without PITR a bad write or delete that replicates "
        "everywhere cannot be undone in any region. Stock rules check AWS::DynamoDB::Table only.",
        replica_pitr,
    ),
    Rule(
        "GT2",
        "A DynamoDB global table replica does not have deletion protection enabled.",
        "Deleting one replica deletes that region's copy of the data; deletion protection makes it a "
        "deliberate two-step change.",
        replica_deletion_protection,
    ),
    Rule(
        "GT3",
        "A DynamoDB global table replica is not encrypted with a customer managed KMS key of its own region.",
        "Each replica must be encrypted at rest with its own region's key (KMSMasterKeyId an ARN, a "
        "cross-stack reference or a key id resolved in that region): a key of another region ties the "
        "replica's availability to that region and moves key use across regions. CDK does not check it.",
        replica_key_in_own_region,
    ),
    Rule(
        "KMS1",
        "A KMS key policy allows a wildcard principal (or uses NotPrincipal), or a replica key has no key policy.",
        "Principal '*' on an Allow opens the key to every AWS account, limited only by conditions that "
        "are easy to get wrong; name the account or the roles. A replica key must carry its own policy.",
        key_policy_no_wildcard_principal,
    ),
    Rule(
        "KMS2",
        "A KMS replica key does not set PendingWindowInDays (7-30).",
        "The waiting period before a scheduled deletion is the only window to cancel it; set it "
        "explicitly on every replica so it is reviewed, not inherited.",
        replica_key_pending_window,
    ),
    Rule(
        "KMS3",
        "A multi-region primary key allows kms:ReplicateKey without limiting kms:ReplicaRegion to explicit, "
        "configured regions.",
        "Replicating a multi-region key copies its key material to another region, where that region's "
        "replica policy decides who may decrypt. Restrict ReplicateKey with StringEquals kms:ReplicaRegion "
        "to the regions the toolkit deploys replica keys in, with no wildcard.",
        primary_replication_scoped,
    ),
    Rule(
        "RDS1",
        "An RDS cluster's storage (or an instance's Performance Insights) is not encrypted with a customer managed "
        "KMS key of its own region.",
        "Each member of a global database must be encrypted at rest with its own region's key (a KmsKeyId that is an "
        "ARN, a reference or an id of a key in that region, never an alias/aws/ key or the AWS managed default): a "
        "key of another region ties the cluster's availability to that region. Stock rules check only encryption.",
        rds_storage_key_in_own_region,
    ),
    Rule(
        "RDS2",
        "An RDS cluster or global cluster does not have deletion protection enabled.",
        "Deleting a global cluster member deletes that region's copy of the records; deleting the global cluster "
        "ends replication everywhere. Deletion protection makes either a deliberate two-step change.",
        rds_deletion_protection,
    ),
    Rule(
        "RDS3",
        "An RDS cluster is not joined to the app's global cluster (or a secondary differs from it), or the global "
        "cluster is not encrypted.",
        "With a global database every cluster is a member: the primary by a reference to the AWS::RDS::GlobalCluster, "
        "each secondary by its identifier, in another region, with the same engine and version and without master "
        "credentials of its own. A stray regional cluster would hold records that never replicate.",
        rds_global_membership,
    ),
    Rule(
        "RDS4",
        "An RDS cluster keeps automated backups for fewer than 7 days.",
        "Point-in-time restore is the way back from a bad write that replicated to every region; a week is the "
        "shortest window the toolkit accepts.",
        rds_backup_retention,
    ),
    Rule(
        "AUD1",
        "An EventBridge rule that matches read-only CloudTrail events (Decrypt, GenerateDataKey, Describe*...) is "
        f"not in the state {STATE_ALL_MANAGEMENT_EVENTS}.",
        "EventBridge delivers read-only management events only to rules in that state: in any other state the rule "
        "never sees a single Decrypt, and the alert it stands for is silent.",
        read_only_events_received,
    ),
    Rule(
        "AUD2",
        "A CloudTrail trail is not multi-region, not logging, without log file validation, global service events "
        "or a KMS key of its own.",
        "The audit alerts and the audit trail rely on every region's management events, kept with proof that no "
        "log file was changed, encrypted with a key whose policy names the trail.",
        trail_complete,
    ),
    Rule(
        "IAM1",
        "An IAM policy allows a kms:, dynamodb:, rds:, rds-db: or secretsmanager: action on a wildcard resource.",
        "Key, table, database and secret permissions must name their ARNs (key policies may use '*', which "
        "means the key itself). A wildcard grants every key, table, cluster or secret of the account, in every region.",
        no_wildcard_resource,
    ),
    Rule(
        "IAM2",
        "A reader role may create ciphertext (kms:GenerateDataKey/Encrypt) or a writer role may kms:Decrypt.",
        "Writers only encrypt and readers only decrypt: a reader that can generate data keys can forge "
        "records that decrypt and verify, and a writer that can decrypt can read every record.",
        reader_writer_separation,
    ),
    Rule(
        "TEN1",
        "A tenant's key exists, or may be replicated, outside its tenant's regions.",
        "A tenant's records may be decrypted only where its key exists (README 'Tenants'): a replica in, or a "
        "kms:ReplicaRegion naming, a region outside the tenant's configured regions moves that right there.",
        tenant_key_in_tenant_regions,
    ),
    Rule(
        "TEN2",
        "An IAM policy allows use of a tenant key without aws:ResourceTag/tenant and kms:EncryptionContext:tenant "
        "equal to ${aws:PrincipalTag/tenant}.",
        "Only a session tagged with a tenant may use that tenant's key, for that tenant's records: without both "
        "conditions a bug holding one tenant's session can use another tenant's key or context.",
        tenant_key_use_scoped,
    ),
    Rule(
        "TEN3",
        "A tenant key's policy allows use without kms:EncryptionContext:tenant equal to the key's tenant.",
        "The key policy binds every use of a tenant's key to that tenant's records, whatever the roles' policies say.",
        tenant_key_policy_bound,
    ),
)


@jsii.implements(IApplyRule)
class _AppliedRule:
    """One rule on one resource, in the shape cdk-nag's ``applyRule`` takes (jsii reads properties)."""

    def __init__(self, rule: Rule, node: CfnResource, context: _Context) -> None:
        self._rule = rule
        self._node = node
        self._context = context

    @property
    def rule_suffix_override(self) -> str:
        return self._rule.suffix

    @property
    def info(self) -> str:
        return self._rule.info

    @property
    def explanation(self) -> str:
        return self._rule.explanation

    @property
    def level(self) -> NagMessageLevel:
        return NagMessageLevel.ERROR

    @property
    def node(self) -> CfnResource:
        return self._node

    def rule(self, node: CfnResource) -> Findings:
        return self._rule.check(node, self._context)


class MrkToolkitChecks(NagPack):
    """The toolkit's rules as a cdk-nag 3 pack (rule ids ``MrkToolkit-<suffix>``, see the module doc).

    Props: ``scope`` (the app, as for the stock packs); ``replica_regions`` (the regions the primary
    may be replicated to; default: every region the app deploys an ``AWS::KMS::ReplicaKey`` in);
    ``tenant_regions`` (tenant id -> its regions, from the config; default None: ``TEN1`` is not
    applied); ``verbose`` (explanations in findings).
    """

    def __init__(
        self,
        scope: IConstruct | None = None,
        *,
        replica_regions: Sequence[str] | None = None,
        tenant_regions: Mapping[str, Sequence[str]] | None = None,
        verbose: bool | None = None,
    ) -> None:
        super().__init__(scope, verbose=verbose)
        self._pack_name = PACK_NAME
        self._context = _Context(
            reader=_TemplateReader(),
            replica_regions=tuple(replica_regions) if replica_regions is not None else None,
            tenant_regions={t: tuple(r) for t, r in tenant_regions.items()} if tenant_regions is not None else None,
        )

    @property
    def name(self) -> str:
        return PACK_NAME

    def _check_resource(self, node: CfnResource) -> None:
        for rule in RULES:
            self._apply_rule(_AppliedRule(rule, node, self._context))
