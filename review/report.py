"""The policy review: every key policy and role policy per region, and who can do what.

``build_review(assembly)`` returns a JSON-ready dict; ``render_markdown`` turns it into the
review page. Both are deterministic: sorted, no timestamps, no paths of this machine, no asset
hashes, the account as ``<account>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cloud_assembly.intrinsics import partition, url_suffix
from cloud_assembly.reader import CloudAssembly
from review.alarms import alarm_entries, alarms_md, audit_rule_entries, audit_rules_md
from review.assembly_view import ACCOUNT
from review.beacons import beacon_access
from review.diagram import mermaid_from_inventory
from review.findings import changes, facts, findings, findings_md, load_previous, reading_key_md
from review.inventory import Cluster, Inventory, Key, Role, Secret, TableReplica
from review.policy import (
    DENY,
    IF_IAM,
    Principal,
    as_list,
    best_of,
    evaluate,
    readable_statement,
    statements,
)
from review.tenants import as_tenant_session, tenant_access

SCHEMA_VERSION = 1

KEY_ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:DeleteAlias",
    "kms:DeleteImportedKeyMaterial",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:ImportKeyMaterial",
    "kms:PutKeyPolicy",
    "kms:ReplicateKey",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:SynchronizeMultiRegionKey",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
    "kms:UpdatePrimaryRegion",
)
# Read-only management actions: not counted as key administration (they change nothing).
KEY_READ_ACTIONS = (
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
)
# Administration that can hand its holder the use of the key: a rewritten key policy, a grant, or a
# replica (same key material) created with a key policy of the caller's choosing.
SELF_GRANT_ACTIONS = ("kms:CreateGrant", "kms:PutKeyPolicy", "kms:ReplicateKey")
CRYPTO_COLUMNS = ("GenerateDataKey", "Decrypt", "Encrypt", "ReEncrypt")
KEY_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GenerateDataKey", ("kms:GenerateDataKey",)),
    ("Decrypt", ("kms:Decrypt",)),
    ("Encrypt", ("kms:Encrypt",)),
    ("ReEncrypt", ("kms:ReEncryptFrom", "kms:ReEncryptTo")),
    ("key administration", KEY_ADMIN_ACTIONS),
)
STREAM_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
BACKUP_ACTIONS = ("dynamodb:RestoreTableFromBackup",)
TABLE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "table read",
        ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PartiQLSelect", "dynamodb:Query", "dynamodb:Scan"),
    ),
    ("stream read", STREAM_ACTIONS),
    (
        "export / backup / restore",
        (
            "dynamodb:CreateBackup",
            "dynamodb:ExportTableToPointInTime",
            "dynamodb:RestoreTableFromBackup",
            "dynamodb:RestoreTableToPointInTime",
        ),
    ),
    (
        "table write",
        (
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteItem",
            "dynamodb:PartiQLDelete",
            "dynamodb:PartiQLInsert",
            "dynamodb:PartiQLUpdate",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ),
    ),
)

SECRET_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("secret read", ("secretsmanager:GetSecretValue",)),
    (
        "secret change / delete",
        (
            "secretsmanager:DeleteSecret",
            "secretsmanager:PutResourcePolicy",
            "secretsmanager:PutSecretValue",
            "secretsmanager:RemoveRegionsFromReplication",
            "secretsmanager:ReplicateSecretToRegions",
            "secretsmanager:RotateSecret",
            "secretsmanager:StopReplicationToReplica",
            "secretsmanager:UpdateSecret",
        ),
    ),
)
_COLUMNS = {"key": KEY_COLUMNS, "table replica": TABLE_COLUMNS, "secret": SECRET_COLUMNS}
_PREFIX = {"key": "kms:", "table replica": "dynamodb:", "secret": "secretsmanager:"}


def _family(resource_kind: str) -> str:
    return resource_kind if resource_kind in ("table replica", "secret") else "key"


def action_resource(action: str, table_or_key_arn: str) -> str:
    """The ARN a request for ``action`` names: the stream and backups have ARNs below the table's."""
    if action in STREAM_ACTIONS:
        return f"{table_or_key_arn}/stream/<stream-label>"
    if action in BACKUP_ACTIONS:
        return f"{table_or_key_arn}/backup/<backup-id>"
    return table_or_key_arn


def reading_key(inventory: Inventory) -> list[tuple[str, str]]:
    """The key to reading the matrices, one short row per term, for the store deployed only."""
    rows = [
        (
            "`allow`",
            "the key or resource policy and the principal's identity policies (as synthesized) allow it, "
            "for a request carrying what the note lists",
        ),
        (
            "`if IAM allows`",
            "the key or table delegates to the account's IAM policies, and this principal's are "
            "outside the app: its IAM policies decide",
        ),
        ("`deny`", "no policy in the assembly allows it, *as the policies stand*"),
        (
            "`deny, can self-grant`",
            f"the principal may call {', '.join(f'`{a}`' for a in SELF_GRANT_ACTIONS)} on the key: it can "
            "rewrite the key policy, grant itself, or replicate the key under a policy of its choosing, and so "
            "give itself that action (each such call is logged in CloudTrail: alarm on it)",
        ),
        (
            "key administration",
            f"any of these {len(KEY_ADMIN_ACTIONS)} actions that change a key or who may use it "
            f"(the note lists which): {', '.join(f'`{a}`' for a in KEY_ADMIN_ACTIONS)}. Read-only actions "
            f"({', '.join(f'`{a}`' for a in KEY_READ_ACTIONS)}) are not counted.{admin_statement_note(inventory.keys)}",
        ),
    ]
    if inventory.tables:
        rows.append(
            (
                "table columns",
                "read (items, PartiQL SELECT); stream read (the stream carries "
                "NEW_AND_OLD_IMAGES: every item as written); export / backup / restore (a full copy of the "
                "table, outside its access policies); write (items, PartiQL INSERT/UPDATE/DELETE)",
            )
        )
    if inventory.secrets:
        rows.append(
            (
                "secret columns",
                "read (`secretsmanager:GetSecretValue`: the database credentials); change "
                "/ delete (value, rotation, replication, resource policy, deletion); a secret's regional "
                "replica has the primary's name and suffix (`-<suffix>`)",
            )
        )
    rows += [
        (
            "`Other access only`",
            "principals with no action of the columns but some other action on the resource, which the line names",
        ),
        (
            "`<account>`, `<...>`",
            "the deploying account; a resource's construct path (physical names exist only after deploy)",
        ),
    ]
    return rows


def admin_statement_note(keys: Sequence[Key]) -> str:
    """How the keys' KeyAdministration statement relates to the column (a different set of actions)."""
    listed = sorted(
        {
            str(a)
            for key in keys
            for stmt in statements(key.policy)
            if stmt.get("Sid") == "KeyAdministration"
            for a in as_list(stmt.get("Action"))
        }
    )
    if not listed:
        return ""
    counted = [a for a in listed if a in KEY_ADMIN_ACTIONS]
    read_only = [a for a in listed if a in KEY_READ_ACTIONS]
    other = [a for a in listed if a not in KEY_ADMIN_ACTIONS and a not in KEY_READ_ACTIONS]
    left_out = [a for a in KEY_ADMIN_ACTIONS if a not in listed]
    text = (
        f" The keys' `KeyAdministration` statement lists {len(listed)} actions, not the same set: "
        f"{len(counted)} of the column's and {len(read_only)} read-only ones"
    )
    text += f", and {', '.join(f'`{a}`' for a in other)}" if other else ""
    return text + f"; it leaves out {', '.join(f'`{a}`' for a in left_out)}." if left_out else text + "."


# -- principals --------------------------------------------------------------------------------------
def _facts(arn: str, **more: str | None) -> dict[str, str | None]:
    return {
        "aws:PrincipalArn": arn,
        "aws:PrincipalAccount": ACCOUNT,
        "kms:CallerAccount": ACCOUNT,
        "kms:ViaService": None,
        **more,
    }


def _principal_names(keys: Sequence[Key]) -> tuple[set[str], set[str], set[str]]:
    """(ARN patterns in aws:PrincipalArn conditions, explicit principal ARNs, service principals)."""
    patterns: set[str] = set()
    explicit: set[str] = set()
    services: set[str] = set()
    for key in keys:
        for stmt in statements(key.policy):
            principal = stmt.get("Principal")
            if isinstance(principal, Mapping):
                services |= {str(s) for s in as_list(principal.get("Service"))}
                for arn in as_list(principal.get("AWS")):
                    if arn != "*" and not str(arn).endswith(":root") and arn != ACCOUNT:
                        explicit.add(str(arn))
            for operator, pairs in (stmt.get("Condition") or {}).items():
                for cond_key, values in (pairs or {}).items():
                    if cond_key.lower() == "aws:principalarn" and "Like" in operator:
                        patterns |= {str(v) for v in as_list(values) if "*" in str(v)}
    return patterns, explicit, services


def global_principals(inventory: Inventory) -> list[Principal]:
    p = partition(inventory.primary_region)
    root = f"arn:{p}:iam::{ACCOUNT}:root"
    other = f"arn:{p}:iam::{ACCOUNT}:role/<any-other-role>"
    patterns, explicit, _ = _principal_names(inventory.keys)
    out = [
        Principal(r.label, "role", arn=r.arn, region=r.region, identity=r.identity(), facts=_facts(r.arn))
        for r in inventory.roles
    ]
    out.append(Principal("account root user", "root", arn=root, identity="all", facts=_facts(root)))
    out.append(Principal("any other principal of the account", "account", arn=other, facts=_facts(other)))
    for pattern in sorted(patterns):
        arn = pattern.replace("*", "<any-other-role>")
        out.append(Principal(f"any other role matching {pattern}", "pattern", arn=arn, facts=_facts(arn)))
    for arn in sorted(explicit):
        out.append(Principal(arn, "explicit", arn=arn, facts=_facts(arn)))
    return out


# The services that use the keys on the account's behalf (kms:ViaService), by store.
_VIA_SERVICES = {"dynamodb": "DynamoDB", "rds": "RDS", "secretsmanager": "Secrets Manager"}


def region_principals(inventory: Inventory, region: str, shared: list[Principal]) -> list[Principal]:
    _, _, services = _principal_names(inventory.keys_in(region))
    extra = [
        Principal(f"service {s}", "service", service=s, identity=[], facts={"aws:SourceAccount": ACCOUNT})
        for s in sorted(services)
    ]
    via_services = ["dynamodb"] if inventory.tables or not inventory.clusters else []
    via_services += ["rds", "secretsmanager"] if inventory.clusters else []
    for service in via_services:
        via = f"{service}.{region}.{url_suffix(region)}"
        caller = f"arn:{partition(region)}:iam::{ACCOUNT}:role/<caller-of-{service}>"
        extra.append(
            Principal(
                f"{_VIA_SERVICES[service]} on the account's behalf (kms:ViaService {via})",
                "via-service",
                arn=caller,
                region=region,
                identity="all",
                facts=_facts(caller, **{"kms:ViaService": via}),
                only_with_condition="kms:ViaService",
            )
        )
    order = {"role": 0, "root": 2, "account": 3, "pattern": 4, "explicit": 5, "service": 6, "via-service": 7}

    def rank(pr: Principal) -> tuple[Any, ...]:
        local = 0 if pr.region == region else 1
        return (order[pr.kind] + (local if pr.kind == "role" else 0), pr.region or "", pr.label)

    return sorted([*shared, *extra], key=rank)


# -- matrix ----------------------------------------------------------------------------------------
def _cell(
    principal: Principal,
    actions: tuple[str, ...],
    arn: str,
    policy: tuple[str, Mapping[str, Any]] | None,
    *,
    needs_resource_policy: bool,
) -> dict[str, Any]:
    decisions = {
        a: evaluate(principal, a, action_resource(a, arn), policy, ACCOUNT, needs_resource_policy=needs_resource_policy)
        for a in actions
    }
    verdict = best_of(decisions)
    if verdict == DENY:
        return {"verdict": DENY}
    detail = {}
    for action in sorted(actions):
        best = decisions[action].best
        if decisions[action].verdict == verdict and best is not None:
            detail[action] = {"via": list(best.via), "requires": list(best.requires)}
    if len(actions) > 1:
        return {"verdict": verdict, "actions": detail}
    return {"verdict": verdict, **detail[actions[0]]}


def _other_actions(
    principal: Principal, columns: Any, arn: str, policy: Any, *, key: bool, prefix: str | None = None
) -> list[str]:
    """Actions outside the columns (named in the resource's or the principal's policies) it may call."""
    in_columns = {a for _, actions in columns for a in actions}
    docs = [policy] if policy else []
    docs += principal.identity if isinstance(principal.identity, list) else []
    prefix = prefix or ("kms:" if key else "dynamodb:")
    named = {
        str(a)
        for _, doc in docs
        for stmt in statements(doc)
        for a in as_list(stmt.get("Action"))
        if str(a).startswith(prefix) and "*" not in str(a)
    }
    return sorted(
        a
        for a in named - in_columns
        if evaluate(principal, a, arn, policy, ACCOUNT, needs_resource_policy=key).verdict != DENY
    )


def _self_grant(principal: Principal, cells: dict[str, dict[str, Any]]) -> None:
    """Mark denied use when the principal may call an action that can give it that use."""
    admin = cells.get("key administration", {})
    paths = sorted(set(admin.get("actions", {})) & set(SELF_GRANT_ACTIONS)) if admin.get("verdict") != DENY else []
    for column in CRYPTO_COLUMNS:
        if paths and cells[column]["verdict"] == DENY:
            cells[column]["self_grant"] = paths


def _matrix_rows(
    principals: list[Principal], label: str, kind: str, arn: str, policy: Any, *, key: bool
) -> list[dict[str, Any]]:
    family = _family(kind) if not key else "key"
    columns = _COLUMNS[family]
    rows = []
    for principal in principals:
        if principal.kind == "via-service" and not key:
            continue  # a service's own use of a table or secret is not a permission question
        cells = {name: _cell(principal, actions, arn, policy, needs_resource_policy=key) for name, actions in columns}
        if key:
            _self_grant(principal, cells)
        row = {"principal": principal.label, "principal_kind": principal.kind, "cells": cells}
        other = _other_actions(principal, columns, arn, policy, key=key, prefix=_PREFIX[family])
        if other:
            row["other_actions"] = other
        rows.append(row)
    return [{"resource": label, "resource_kind": kind, "arn": arn, "rows": rows}]


# -- sections --------------------------------------------------------------------------------------
def _key_entry(key: Key, inventory: Inventory) -> dict[str, Any]:
    props = key.resource.properties
    entry: dict[str, Any] = {
        "label": key.label,
        "kind": key.kind,
        "construct": key.resource.path,
        "arn": key.arn,
        "aliases": list(key.aliases),
        "pending_window_days": props.get("PendingWindowInDays"),
        "statements": [readable_statement(s, i, ACCOUNT) for i, s in enumerate(statements(key.policy))],
    }
    if key.resource.type == "AWS::KMS::ReplicaKey":
        entry["primary_key_arn"] = props.get("PrimaryKeyArn")
        entry["rotation"] = "follows the primary"
    else:
        entry["rotation"] = "on" if props.get("EnableKeyRotation") in (True, "true") else "off"
        entry["key_spec"] = props.get("KeySpec", "SYMMETRIC_DEFAULT")
    used_by = sorted(t.label for t in inventory.tables if inventory.key_for(t.sse_key, t.region) == key)
    used_by += sorted(f.label for f in inventory.functions if f.log_key_arn == key.arn)
    used_by += sorted(c.label for c in inventory.clusters if inventory.key_for(c.storage_key, c.region) == key)
    used_by += sorted(s.label for s in inventory.secrets if inventory.key_for(s.kms_key, s.region) == key)
    if used_by:
        entry["encrypts"] = used_by
    return entry


def _table_entry(table: TableReplica, inventory: Inventory) -> dict[str, Any]:
    key = inventory.key_for(table.sse_key, table.region)
    return {
        "label": table.label,
        "construct": table.resource.path,
        "stack": table.resource.stack.name,
        "arn": table.arn,
        "sse_key": table.sse_key,
        "sse_key_label": key.label if key else None,
        "sse_key_region": key.region if key else None,
        "point_in_time_recovery": table.pitr,
        "deletion_protection": table.deletion_protection,
        "resource_policy": [readable_statement(s, i, ACCOUNT) for i, s in enumerate(statements(table.resource_policy))],
    }


def _cluster_entry(cluster: Cluster, inventory: Inventory) -> dict[str, Any]:
    key = inventory.key_for(cluster.storage_key, cluster.region)
    return {
        "label": cluster.label,
        "construct": cluster.resource.path,
        "stack": cluster.resource.stack.name,
        "global_cluster": cluster.global_cluster,
        "engine_version": cluster.engine_version,
        "storage_encrypted": cluster.storage_encrypted,
        "storage_key": cluster.storage_key,
        "storage_key_label": key.label if key else None,
        "storage_key_region": key.region if key else None,
        "deletion_protection": cluster.deletion_protection,
        "backup_retention_days": cluster.backup_retention_days,
        "iam_database_authentication": cluster.iam_auth,
        "log_exports": list(cluster.log_exports),
    }


def _secret_entry(secret: Secret, inventory: Inventory) -> dict[str, Any]:
    key = inventory.key_for(secret.kms_key, secret.region)
    readers = sorted(
        r.label
        for r in inventory.roles
        if evaluate(
            Principal(r.label, "role", arn=r.arn, region=r.region, identity=r.identity(), facts=_facts(r.arn)),
            "secretsmanager:GetSecretValue",
            secret.arn,
            None,
            ACCOUNT,
            needs_resource_policy=False,
        ).verdict
        != DENY
    )
    return {
        "label": secret.label,
        "construct": secret.resource.path,
        "arn": secret.arn,
        "replica": secret.replica,
        "kms_key": secret.kms_key,
        "kms_key_label": key.label if key else None,
        "kms_key_region": key.region if key else None,
        "readable_by": readers,
    }


def _role_entry(role: Role, inventory: Inventory) -> dict[str, Any]:
    return {
        "label": role.label,
        "construct": role.resource.path,
        "arn": role.arn,
        "iam_path": role.resource.properties.get("Path", "/"),
        "trusted": list(role.trusted),
        "used_by": sorted(f.label for f in inventory.functions if f.role_arn == role.arn),
        "policies": [
            {
                "name": p.name,
                "type": p.kind,
                "construct": p.path,
                "statements": [readable_statement(s, i, ACCOUNT) for i, s in enumerate(statements(p.document))],
            }
            for p in role.policies
        ],
    }


def build_review(assembly: CloudAssembly) -> dict[str, Any]:
    """The review as JSON: the per-region detail, then the findings drawn from it (review/findings.py)."""
    review = _detail(assembly)
    tenants = tenant_access(assembly)
    if tenants:  # a deployment without tenants keeps its review as it was
        review["tenants"] = tenants
    beacons = beacon_access(assembly)
    if beacons:  # nor does one without beacon fields
        review["beacons"] = beacons
    accounts = sorted({s.account for s in assembly.stacks.values() if s.account})
    review["findings"] = findings(review, assembly.directory, accounts)
    review["facts"] = facts(review)
    review["changes"] = {"previous": None}
    return review


def _detail(assembly: CloudAssembly) -> dict[str, Any]:
    inventory = Inventory(assembly)
    shared = global_principals(inventory)
    regions = []
    for region in inventory.regions:
        principals = region_principals(inventory, region, shared)
        matrix: list[dict[str, Any]] = []
        for key in inventory.keys_in(region):
            tags = {str(t.get("Key")): str(t.get("Value")) for t in key.resource.properties.get("Tags") or []}
            asked = [as_tenant_session(p, tags) for p in principals]
            matrix += _matrix_rows(asked, key.label, key.kind, key.arn, ("key policy", key.policy), key=True)
        for table in inventory.tables_in(region):
            policy = ("resource policy", table.resource_policy) if table.resource_policy else None
            matrix += _matrix_rows(principals, table.label, "table replica", table.arn, policy, key=False)
        for secret in inventory.secrets_in(region):
            matrix += _matrix_rows(principals, secret.label, "secret", secret.arn, None, key=False)
        aurora: dict[str, Any] = {}
        if inventory.clusters or inventory.secrets:
            aurora = {
                "clusters": [_cluster_entry(c, inventory) for c in inventory.clusters_in(region)],
                "secrets": [_secret_entry(s, inventory) for s in inventory.secrets_in(region)],
            }
        regions.append(
            {
                "region": region,
                "primary": region == inventory.primary_region,
                "keys": [_key_entry(k, inventory) for k in inventory.keys_in(region)],
                "tables": [_table_entry(t, inventory) for t in inventory.tables_in(region)],
                "roles": [_role_entry(r, inventory) for r in inventory.roles if r.region == region],
                "matrix": matrix,
                "alarms": alarm_entries(inventory, region),
                "audit_rules": audit_rule_entries(inventory, region),
                **aurora,
            }
        )
    waves = assembly.waves()
    return {
        "schema_version": SCHEMA_VERSION,
        "primary_region": inventory.primary_region,
        "regions_order": list(inventory.regions),
        "stacks": [
            {"name": s.name, "region": s.region, "wave": i + 1, "depends_on": sorted(s.dependencies)}
            for i, wave in enumerate(waves)
            for s in wave
        ],
        "reading_key": [list(row) for row in reading_key(inventory)],
        "legend": " ".join(f"{term}: {means}." for term, means in reading_key(inventory)),
        "mermaid": mermaid_from_inventory(inventory),
        "regions": regions,
    }


# -- markdown --------------------------------------------------------------------------------------
def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(values: Sequence[str]) -> str:
    return "<br>".join(f"`{_md(v)}`" for v in values) if values else "—"


def _statement_table(rows: list[dict[str, Any]], *, with_principal: bool) -> list[str]:
    head = ["Sid", "Effect", *(["Principal"] if with_principal else []), "Actions", "Resources", "Conditions"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in rows:
        principal = s.get("principals", []) + [f"NOT {p}" for p in s.get("not_principals", [])]
        actions = s.get("actions", []) + [f"NOT {a}" for a in s.get("not_actions", [])]
        resources = s.get("resources", []) + [f"NOT {r}" for r in s.get("not_resources", [])]
        cells = [
            f"`{_md(s['sid'])}`",
            s["effect"],
            *([_md("<br>".join(principal)) or "—"] if with_principal else []),
            _code(actions),
            _code(resources),
            _code(s["conditions"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _grant_text(via: Sequence[str], requires: Sequence[str]) -> str:
    parts = [
        ("via " + " + ".join(via)) if via else "",
        ("request must carry " + ", ".join(requires)) if requires else "",
    ]
    return ", ".join(p for p in parts if p)


def _note(cell: Mapping[str, Any]) -> str:
    if "actions" not in cell:
        return _grant_text(cell["via"], cell["requires"])
    groups: dict[str, list[str]] = {}
    for action, grant in cell["actions"].items():
        groups.setdefault(_grant_text(grant["via"], grant["requires"]), []).append(action)
    return "; ".join(f"{', '.join(sorted(acts))} {text}".rstrip() for text, acts in sorted(groups.items()))


def _verdict_text(cell: Mapping[str, Any], total: int) -> str:
    verdict = cell["verdict"]
    text = {DENY: "deny", IF_IAM: "if IAM allows"}.get(verdict, "**allow**")
    if cell.get("self_grant"):
        text = "deny, **can self-grant**"
    if verdict != DENY and total > 1:
        text += f" ({len(cell.get('actions', []))} of {total})"
    return text


def _self_grant_note(cell: Mapping[str, Any]) -> str:
    if not cell.get("self_grant"):
        return ""
    return (
        f"denied only while the key policy stands: this principal may call {', '.join(cell['self_grant'])}, "
        "which can give it this action (rewrite the key policy, create a grant, or replicate the key under a "
        "policy of its choosing); each such call is logged in CloudTrail"
    )


def _other_text(row: Mapping[str, Any]) -> str:
    return f"{_md(row['principal'])}: {', '.join(f'`{a}`' for a in row['other_actions'])}"


def _matrix_md(block: Mapping[str, Any], notes: dict[str, int]) -> list[str]:
    columns = _COLUMNS[_family(block["resource_kind"])]
    shown, other, none = [], [], []
    for row in block["rows"]:
        if any(c["verdict"] != DENY or c.get("self_grant") for c in row["cells"].values()):
            shown.append(row)
        else:
            (other if row.get("other_actions") else none).append(row)
    lines = [
        f"#### {_md(block['resource'])} — {block['resource_kind']}",
        "",
        "| Principal | " + " | ".join(name for name, _ in columns) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for row in shown:
        cells = []
        for name, actions in columns:
            cell = row["cells"][name]
            text = _verdict_text(cell, len(actions))
            note = _note(cell) if cell["verdict"] != DENY else _self_grant_note(cell)
            if note:
                text += f" [{notes.setdefault(note, len(notes) + 1)}]"
            cells.append(text)
        lines.append(f"| {_md(row['principal'])} | " + " | ".join(cells) + " |")
    if other:
        lines += ["", "Other access only: " + "; ".join(_other_text(r) for r in other) + "."]
    if none:
        lines += ["", "No access: " + ", ".join(_md(r["principal"]) for r in none) + "."]
    return [*lines, ""]


def render_markdown(review: Mapping[str, Any]) -> str:
    """The findings first, then the deployment, the key to reading it, and each region's detail."""
    out = [
        "# Policy review",
        "",
        "Generated by `python -m review` from the synthesized cloud assembly: do not edit by hand, "
        "regenerate and review the diff.",
        "",
        *findings_md(review),
        *_overview_md(review),
    ]
    for region in review["regions"]:
        title = "primary region" if region["primary"] else "replica region"
        out += [f"## {region['region']} ({title})", ""]
        for section in REGION_SECTIONS:
            out += section(region)
    return "\n".join(out).rstrip("\n") + "\n"


def _overview_md(review: Mapping[str, Any]) -> list[str]:
    """The stacks in deployment waves, the architecture diagram and the key to reading the matrices."""
    return [
        "## Deployment",
        "",
        f"Primary region `{review['primary_region']}`; regions {', '.join(f'`{r}`' for r in review['regions_order'])}.",
        "",
        "| Wave | Stack | Region | Depends on |",
        "|---|---|---|---|",
        *(
            f"| {s['wave']} | `{s['name']}` | `{s['region']}` | {', '.join(f'`{d}`' for d in s['depends_on']) or '—'} |"
            for s in review["stacks"]
        ),
        "",
        "## Architecture",
        "",
        "```mermaid",
        review["mermaid"].rstrip("\n"),
        "```",
        "",
        *reading_key_md([tuple(row) for row in review["reading_key"]]),
    ]


def _matrices_md(region: Mapping[str, Any]) -> list[str]:
    out = ["### Who can do what", ""]
    notes: dict[str, int] = {}
    for block in region["matrix"]:
        out += _matrix_md(block, notes)
    if notes:
        out += ["Notes:", ""]
        out += [f"{n}. {_md(text)}" for text, n in sorted(notes.items(), key=lambda item: item[1])]
        out.append("")
    return out


def _keys_md(region: Mapping[str, Any]) -> list[str]:
    out = ["### KMS keys", ""]
    for key in region["keys"]:
        facts = [f"ARN `{key['arn']}`", f"rotation {key['rotation']}"]
        if key.get("pending_window_days") is not None:
            facts.append(f"pending window {key['pending_window_days']} days")
        if key.get("primary_key_arn"):
            facts.append(f"replica of `{key['primary_key_arn']}`")
        if key.get("encrypts"):
            facts.append("encrypts " + ", ".join(key["encrypts"]))
        out += [f"#### {_md(key['label'])} — {key['kind']}", "", f"`{key['construct']}`: " + "; ".join(facts), ""]
        out += [*_statement_table(key["statements"], with_principal=True), ""]
    return out


def _tables_md(region: Mapping[str, Any]) -> list[str]:
    if not region["tables"]:
        return []
    out = ["### Table replicas", "", "| Replica | Defined in | SSE key | PITR | Deletion protection |"]
    out.append("|---|---|---|---|---|")
    yes = {True: "on", False: "**off**"}
    for t in region["tables"]:
        key = f"{t['sse_key_label']} ({t['sse_key_region']})" if t["sse_key_label"] else t["sse_key"] or "—"
        out.append(
            f"| {_md(t['label'])} | `{t['stack']}` | {_md(key)} | {yes[t['point_in_time_recovery']]} "
            f"| {yes[t['deletion_protection']]} |"
        )
    out.append("")
    for t in region["tables"]:
        if t["resource_policy"]:
            out += [f"Resource policy of {_md(t['label'])}:", ""]
            out += [*_statement_table(t["resource_policy"], with_principal=True), ""]
    return out


def _roles_md(region: Mapping[str, Any]) -> list[str]:
    out = ["### IAM roles", ""] if region["roles"] else []
    for role in region["roles"]:
        facts = [f"ARN `{role['arn']}`", "trusts " + (", ".join(role["trusted"]) or "nobody")]
        if role["used_by"]:
            facts.append("used by " + ", ".join(role["used_by"]))
        out += [f"#### {_md(role['label'])}", "", f"`{role['construct']}`: " + "; ".join(facts), ""]
        for policy in role["policies"]:
            out += [f"{_md(policy['name'])} ({policy['type']}):", ""]
            if policy["statements"]:
                out += [*_statement_table(policy["statements"], with_principal=False), ""]
    return out


def _aurora_md(region: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    yes = {True: "on", False: "**off**"}
    if region.get("clusters"):
        out += [
            "### Aurora clusters",
            "",
            "| Cluster | Defined in | Global cluster | Version | Storage key | Deletion protection | Backups (days) "
            "| IAM auth | Logs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in region["clusters"]:
            key = (
                f"{c['storage_key_label']} ({c['storage_key_region']})" if c["storage_key_label"] else c["storage_key"]
            )
            encrypted = _md(key or "—") if c["storage_encrypted"] else "**not encrypted**"
            out.append(
                f"| {_md(c['label'])} | `{c['stack']}` | `{_md(c['global_cluster'] or '—')}` | {c['engine_version']} "
                f"| {encrypted} | {yes[c['deletion_protection']]} | {c['backup_retention_days']} "
                f"| {'on' if c['iam_database_authentication'] else 'off (secrets)'} "
                f"| {', '.join(c['log_exports']) or '—'} |"
            )
        out.append("")
    if region.get("secrets"):
        out += ["### Secrets", "", "| Secret | Key | Readable by (GetSecretValue) |", "|---|---|---|"]
        for s in region["secrets"]:
            key = f"{s['kms_key_label']} ({s['kms_key_region']})" if s["kms_key_label"] else s["kms_key"] or "—"
            out.append(
                f"| {_md(s['label'])} | {_md(key)} | {_md(', '.join(s['readable_by']) or 'nobody in the app')} |"
            )
        out.append("")
    return out


# Each region's sections, in order: a renderer takes the region's JSON and returns Markdown lines (none
# when the region has nothing of its kind, e.g. no table replica for the Aurora store). Add a section here.
REGION_SECTIONS: list[Callable[[Mapping[str, Any]], list[str]]] = [
    _matrices_md,
    _keys_md,
    _tables_md,
    _aurora_md,
    lambda region: alarms_md(region.get("alarms", [])),
    lambda region: audit_rules_md(region.get("audit_rules", [])),
    _roles_md,
]
REVIEW_JSON = "policy-review.json"


def write_review(assembly: CloudAssembly, out_dir: Path, previous: Path | None = None) -> tuple[Path, Path]:
    """Write the review into ``out_dir``, compared with ``previous`` (a report's JSON; default: the
    one ``out_dir`` already holds, which this run replaces)."""
    review = build_review(assembly)
    md_path, json_path = out_dir / "policy-review.md", out_dir / REVIEW_JSON
    source = previous or json_path
    review["changes"] = changes(load_previous(source), review, str(source))
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path.write_text(render_markdown(review))
    json_path.write_text(json.dumps(review, indent=2, sort_keys=True) + "\n")
    return md_path, json_path
