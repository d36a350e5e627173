"""What the assembly deploys, region by region: keys, table replicas (DynamoDB store) or clusters and
secrets (Aurora PostgreSQL store), roles and functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud_assembly.intrinsics import partition, url_suffix
from cloud_assembly.reader import CloudAssembly
from review.assembly_view import ACCOUNT, AssemblyView, Resource
from review.policy import as_list, principal_text, role_kind, statements

KEY_TYPES = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")


@dataclass(frozen=True)
class Key:
    resource: Resource
    arn: str
    key_id: str
    kind: str  # "multi-region key (primary)", "multi-region key (replica)", "table SSE key", ...
    aliases: tuple[str, ...]

    @property
    def region(self) -> str:
        return self.resource.region

    @property
    def label(self) -> str:
        return self.aliases[0] if self.aliases else self.resource.path

    @property
    def policy(self) -> dict[str, Any]:
        return self.resource.properties.get("KeyPolicy") or {}


@dataclass(frozen=True)
class TableReplica:
    resource: Resource  # the AWS::DynamoDB::GlobalTable (or Table) that defines it
    region: str
    name: str
    arn: str
    sse_key: str | None
    pitr: bool
    deletion_protection: bool
    resource_policy: dict[str, Any] | None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.region})"


@dataclass(frozen=True)
class Cluster:
    """One region's member of an Aurora global database (AWS::RDS::DBCluster)."""

    resource: Resource
    role: str  # "primary" (joins by Ref) / "secondary" (joins by identifier) / "regional"
    global_cluster: str | None
    engine_version: str | None
    storage_key: str | None
    storage_encrypted: bool
    deletion_protection: bool
    backup_retention_days: Any
    iam_auth: bool
    log_exports: tuple[str, ...]

    @property
    def region(self) -> str:
        return self.resource.region

    @property
    def label(self) -> str:
        return f"{self.role} cluster ({self.region})"


@dataclass(frozen=True)
class Secret:
    """A Secrets Manager secret in one region: the secret itself or one of its replicas."""

    resource: Resource  # the AWS::SecretsManager::Secret that defines it (in the primary region)
    region: str
    name: str
    arn: str
    kms_key: str | None
    replica: bool

    @property
    def label(self) -> str:
        return f"secret {self.name} ({self.region}{', replica' if self.replica else ''})"


@dataclass(frozen=True)
class PolicyRef:
    name: str  # short: the policy's construct id, or the inline policy name
    kind: str  # "customer managed", "inline", "external managed (not evaluated)"
    path: str
    document: dict[str, Any]


@dataclass(frozen=True)
class Role:
    resource: Resource
    arn: str
    kind: str | None  # "writer" / "reader" from the IAM path, else None
    label: str
    trusted: tuple[str, ...]
    policies: tuple[PolicyRef, ...]

    @property
    def region(self) -> str:
        return self.resource.region

    def identity(self) -> list[tuple[str, dict[str, Any]]]:
        return [(p.name, p.document) for p in self.policies if p.kind != "external managed (not evaluated)"]


@dataclass(frozen=True)
class Function:
    resource: Resource
    label: str
    role_arn: str
    log_key_arn: str | None


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class Inventory:
    def __init__(self, assembly: CloudAssembly) -> None:
        self.view = AssemblyView(assembly)
        self.assembly = assembly
        self.tables = self._tables()
        self.clusters = self._clusters()
        self.secrets = self._secrets()
        self.keys = self._keys()
        self.roles = self._roles()
        self.functions = self._functions()
        self.primary_region = self._primary_region()
        others = {s.region for s in assembly.stacks.values()} | {t.region for t in self.tables}
        others |= {s.region for s in self.secrets}
        self.regions = (self.primary_region, *sorted(others - {self.primary_region}))

    def _primary_region(self) -> str:
        for key in self.keys:
            if key.kind == "multi-region key (primary)":
                return key.region
        for resource in self.view.resources("AWS::DynamoDB::GlobalTable"):
            return resource.region
        return sorted(s.region for s in self.assembly.stacks.values())[0]

    # -- keys ------------------------------------------------------------------------------------
    def _keys(self) -> list[Key]:
        aliases: dict[tuple[str, str], list[str]] = {}
        for alias in self.view.resources("AWS::KMS::Alias"):
            target = str(alias.properties.get("TargetKeyId", ""))
            aliases.setdefault((alias.region, target.rsplit("key/", 1)[-1]), []).append(
                str(alias.properties.get("AliasName"))
            )
        sse_keys = {t.sse_key for t in self.tables if t.sse_key}
        storage_keys = {str(c.storage_key) for c in self.clusters if c.storage_key}
        secrets_keys = {str(s.kms_key) for s in self.secrets if s.kms_key}
        log_keys = {str(g.properties.get("KmsKeyId")) for g in self.view.resources("AWS::Logs::LogGroup")}
        topic_keys = {str(t.properties.get("KmsMasterKeyId")) for t in self.view.resources("AWS::SNS::Topic")}
        trail_keys = {str(t.properties.get("KMSKeyId")) for t in self.view.resources("AWS::CloudTrail::Trail")}
        keys = []
        for type_name in KEY_TYPES:
            for resource in self.view.resources(type_name):
                arn = self.view.physical(resource.stack, resource.logical_id, "Arn")
                key_id = arn.rsplit("key/", 1)[-1]
                names = tuple(sorted(aliases.get((resource.region, key_id), [])))
                alias_arns = {f"{arn.split(':key/')[0]}:{a}" for a in names} | set(names)
                if type_name == "AWS::KMS::ReplicaKey":
                    kind = "multi-region key (replica)"
                elif _is_true(resource.properties.get("MultiRegion")):
                    kind = "multi-region key (primary)"
                elif ({arn, key_id} | alias_arns) & sse_keys:
                    kind = "table SSE key"
                elif ({arn, key_id} | alias_arns) & storage_keys:
                    kind = "cluster storage key"
                elif ({arn, key_id} | alias_arns) & secrets_keys:
                    kind = "secrets key"
                elif {arn, key_id} & log_keys:
                    kind = "log group key"
                elif ({arn, key_id} | alias_arns) & topic_keys:
                    kind = "alarm topic key"
                elif ({arn, key_id} | alias_arns) & trail_keys:
                    kind = "audit trail key"
                else:
                    kind = "KMS key"
                keys.append(Key(resource, arn, key_id, kind, names))
        return sorted(keys, key=lambda k: (k.region, k.kind, k.label))

    def key_for(self, reference: str | None, region: str) -> Key | None:
        """The key a KMSMasterKeyId/KmsKeyId names (ARN, id, alias name or alias ARN)."""
        if not reference:
            return None
        for key in self.keys:
            alias_arns = {f"{key.arn.split(':key/')[0]}:{a}" for a in key.aliases}
            names = {key.arn} | alias_arns if reference.startswith("arn:") else {key.key_id, *key.aliases}
            if reference in names and (reference.startswith("arn:") or key.region == region):
                return key
        return None

    # -- tables ----------------------------------------------------------------------------------
    def _tables(self) -> list[TableReplica]:
        out = []
        for resource in self.view.resources("AWS::DynamoDB::GlobalTable"):
            name = self.view.physical(resource.stack, resource.logical_id, "Ref")
            for replica in as_list(resource.properties.get("Replicas")):
                region = str(replica.get("Region"))
                arn = f"arn:{partition(region)}:dynamodb:{region}:{ACCOUNT}:table/{name}"
                out.append(
                    TableReplica(
                        resource=resource,
                        region=region,
                        name=name,
                        arn=arn,
                        sse_key=(replica.get("SSESpecification") or {}).get("KMSMasterKeyId"),
                        pitr=_is_true(
                            (replica.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
                        ),
                        deletion_protection=_is_true(replica.get("DeletionProtectionEnabled")),
                        resource_policy=(replica.get("ResourcePolicy") or {}).get("PolicyDocument"),
                    )
                )
        for resource in self.view.resources("AWS::DynamoDB::Table"):
            props = resource.properties
            out.append(
                TableReplica(
                    resource=resource,
                    region=resource.region,
                    name=self.view.physical(resource.stack, resource.logical_id, "Ref"),
                    arn=self.view.physical(resource.stack, resource.logical_id, "Arn"),
                    sse_key=(props.get("SSESpecification") or {}).get("KMSMasterKeyId"),
                    pitr=_is_true(
                        (props.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
                    ),
                    deletion_protection=_is_true(props.get("DeletionProtectionEnabled")),
                    resource_policy=(props.get("ResourcePolicy") or {}).get("PolicyDocument"),
                )
            )
        return sorted(out, key=lambda t: (t.region, t.name))

    # -- Aurora: clusters and secrets ------------------------------------------------------------
    def _clusters(self) -> list[Cluster]:
        out = []
        for resource in self.view.resources("AWS::RDS::DBCluster"):
            props = resource.properties
            raw = resource.stack.template["Resources"][resource.logical_id].get("Properties", {})
            joined = raw.get("GlobalClusterIdentifier")
            role = "regional" if joined is None else "primary" if isinstance(joined, dict) else "secondary"
            out.append(
                Cluster(
                    resource=resource,
                    role=role,
                    global_cluster=str(props["GlobalClusterIdentifier"]) if joined is not None else None,
                    engine_version=props.get("EngineVersion"),
                    storage_key=str(props["KmsKeyId"]) if props.get("KmsKeyId") else None,
                    storage_encrypted=_is_true(props.get("StorageEncrypted")),
                    deletion_protection=_is_true(props.get("DeletionProtection")),
                    backup_retention_days=props.get("BackupRetentionPeriod"),
                    iam_auth=_is_true(props.get("EnableIAMDatabaseAuthentication")),
                    log_exports=tuple(str(e) for e in as_list(props.get("EnableCloudwatchLogsExports") or [])),
                )
            )
        return sorted(out, key=lambda c: (c.region, c.role))

    def _secrets(self) -> list[Secret]:
        out = []
        for resource in self.view.resources("AWS::SecretsManager::Secret"):
            props = resource.properties
            arn = self.view.physical(resource.stack, resource.logical_id, "Ref")
            name = str(props.get("Name") or resource.path)
            key = str(props["KmsKeyId"]) if props.get("KmsKeyId") else None
            out.append(Secret(resource, resource.region, name, arn, key, replica=False))
            for replica in as_list(props.get("ReplicaRegions") or []):
                region = str(replica.get("Region"))
                replica_arn = f"arn:{partition(region)}:secretsmanager:{region}:{ACCOUNT}:secret:{arn.split(':', 6)[6]}"
                replica_key = str(replica["KmsKeyId"]) if replica.get("KmsKeyId") else None
                out.append(Secret(resource, region, name, replica_arn, replica_key, replica=True))
        return sorted(out, key=lambda s: (s.region, s.name))

    # -- roles and functions ---------------------------------------------------------------------
    def _roles(self) -> list[Role]:
        policies = [p for t in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy") for p in self.view.resources(t)]
        roles = []
        for resource in self.view.resources("AWS::IAM::Role"):
            props = resource.properties
            name = self.view.physical(resource.stack, resource.logical_id, "Ref")
            arn = self.view.physical(resource.stack, resource.logical_id, "Arn")
            attached: list[PolicyRef] = []
            for inline in as_list(props.get("Policies")):
                attached.append(
                    PolicyRef(
                        str(inline.get("PolicyName")), "inline", resource.path, inline.get("PolicyDocument") or {}
                    )
                )
            managed_arns = [str(a) for a in as_list(props.get("ManagedPolicyArns"))]
            for policy in policies:
                if policy.stack is not resource.stack:
                    continue
                policy_arn = self.view.physical(policy.stack, policy.logical_id, "Ref")
                if name in [str(r) for r in as_list(policy.properties.get("Roles"))] or policy_arn in managed_arns:
                    kind = "customer managed" if policy.type == "AWS::IAM::ManagedPolicy" else "inline"
                    short = policy.path.rsplit("/", 1)[-1]
                    attached.append(PolicyRef(short, kind, policy.path, policy.properties.get("PolicyDocument") or {}))
                    if policy_arn in managed_arns:
                        managed_arns.remove(policy_arn)
            for external in managed_arns:
                attached.append(PolicyRef(external, "external managed (not evaluated)", "", {}))
            trusted = tuple(
                sorted(
                    {
                        text
                        for stmt in statements(props.get("AssumeRolePolicyDocument"))
                        for text in principal_text(stmt.get("Principal"), ACCOUNT)
                    }
                )
            )
            kind = role_kind(props.get("Path"), resource.path)
            label = f"{kind} role ({resource.region})" if kind else f"role {resource.path}"
            roles.append(
                Role(resource, arn, kind, label, trusted, tuple(sorted(attached, key=lambda p: (p.kind, p.name))))
            )
        labels = [r.label for r in roles]
        roles = [
            r
            if labels.count(r.label) == 1
            else Role(r.resource, r.arn, r.kind, f"{r.label} {r.resource.path}", r.trusted, r.policies)
            for r in roles
        ]
        return sorted(roles, key=lambda r: (r.region, r.kind or "~", r.label))

    def _functions(self) -> list[Function]:
        groups = {
            self.view.physical(g.stack, g.logical_id, "Ref"): str(g.properties.get("KmsKeyId") or "") or None
            for g in self.view.resources("AWS::Logs::LogGroup")
        }
        out = []
        for resource in self.view.resources("AWS::Lambda::Function"):
            role_arn = str(resource.properties.get("Role", ""))
            role = next((r for r in self.roles if r.arn == role_arn), None)
            group = (resource.properties.get("LoggingConfig") or {}).get("LogGroup")
            kind = role.kind if role and role.kind else None
            label = f"{kind} function ({resource.region})" if kind else f"function {resource.path}"
            out.append(Function(resource, label, role_arn, groups.get(str(group)) if group else None))
        return sorted(out, key=lambda f: (f.resource.region, f.label))

    # -- lookups ---------------------------------------------------------------------------------
    def keys_in(self, region: str) -> list[Key]:
        return [k for k in self.keys if k.region == region]

    def tables_in(self, region: str) -> list[TableReplica]:
        return [t for t in self.tables if t.region == region]

    def clusters_in(self, region: str) -> list[Cluster]:
        return [c for c in self.clusters if c.region == region]

    def secrets_in(self, region: str) -> list[Secret]:
        return [s for s in self.secrets if s.region == region]

    def dynamodb_service(self, region: str) -> str:
        return f"dynamodb.{region}.{url_suffix(region)}"
