"""Per beacon field and region: who may compute the field's beacons, and who may find records by it
(README "Beacons"). Decided by the one policy engine, exhaustively, as the role contracts are
(cloud_assembly/role_access.py on the templates): every role of the deployment asked every request.

To compute a beacon a principal needs ``kms:GenerateMac`` on the region's beacon key; to find by a field it
needs that, ``kms:Decrypt`` on the region's records key (the candidates; with tenants: on a tenant's key, in
a session of a tenant-access role it may assume, listed per tenant) and, on the DynamoDB store,
``dynamodb:Query`` on the field's beacon index (on the Aurora store the finder reads through the reader's
database login, whose SELECT grants are the database section's). Roles outside the deployment are covered
by the key policies, in each region's matrices. Empty without beacon fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from cloud_assembly.contracts import contract_for
from cloud_assembly.reader import CloudAssembly
from cloud_assembly.role_access import DeploymentView, role_access
from lambda_src.record_crypto.settings import BEACON_INDEX_PREFIX, ENV_BEACON_FIELDS, TENANT_KEY
from review.role_view import deployment_view

BEACON_KEY_STEM, RECORDS_KEY_STEM = "BeaconKey", "RecordsKey"


def beacon_fields(assembly: CloudAssembly) -> list[str]:
    """The beacon fields the deployed functions name (their BEACON_FIELDS), in order."""
    for stack in assembly.stacks.values():
        for res in stack.template.get("Resources", {}).values():
            value = res.get("Properties", {}).get("Environment", {}).get("Variables", {}).get(ENV_BEACON_FIELDS)
            if isinstance(value, str) and value:
                return [entry.split(":", 1)[0] for entry in value.split(",")]
    return []


def _who(view: DeploymentView, role_arn: str) -> str:
    role = next(r for r in view.roles if r.arn == role_arn)
    contract = contract_for(role.stem)
    return f"{contract.title if contract else 'the role'} ({role.region}) {role.stack}/{role.stem}"


def beacon_access(assembly: CloudAssembly) -> list[dict[str, Any]]:
    """One entry per beacon field and region: who may compute its beacons, who may find by it."""
    fields = beacon_fields(assembly)
    if not fields:
        return []
    view = deployment_view(assembly)
    keys = {(r.stem, r.region): r.arn for r in view.resources if r.stem in (BEACON_KEY_STEM, RECORDS_KEY_STEM)}
    dynamodb = any(r.arn and ":dynamodb:" in r.arn for r in view.resources)
    out = []
    for region in sorted({region for _, region in keys}):
        allowed: dict[str, set[tuple[str, str]]] = {}
        for role in view.roles:
            allowed[role.arn] = {(a.action, a.target.arn or "") for a in role_access(role, view).asked if a.allowed}
        sessions = _tenant_sessions(view, region)
        for field in fields:
            index = f"{BEACON_INDEX_PREFIX}{field}"
            compute, find = [], []
            for arn, rights in allowed.items():
                if ("kms:GenerateMac", keys.get((BEACON_KEY_STEM, region))) not in rights:
                    continue
                compute.append(_who(view, arn))
                decrypts = ("kms:Decrypt", keys.get((RECORDS_KEY_STEM, region))) in rights
                queries = not dynamodb or any(
                    action == "dynamodb:Query"
                    and f":dynamodb:{region}:" in target
                    and fnmatchcase(f"{target.split('/index/')[0]}/index/{index}", target)
                    for action, target in rights
                )
                tenants = _tenants_through_sessions(rights, sessions)
                if queries and decrypts:
                    find.append(_who(view, arn))
                if queries and tenants:
                    find.append(f"{_who(view, arn)}, in a tenant's session: {', '.join(tenants)}")
            out.append({"field": field, "region": region, "compute": sorted(compute), "find": sorted(find)})
    return out


def _tenant_sessions(view: DeploymentView, region: str) -> dict[str, set[str]]:
    """With tenants: role ARN -> what its tagged sessions may decrypt with the region's tenant keys, as
    ``tenant`` (a session of that tenant, its own key) or ``key's tenant as session's tenant`` (a crossing)."""
    tenant_keys = {
        arn: tags[TENANT_KEY]
        for arn, tags in view.resource_tags.items()
        if TENANT_KEY in tags and f":kms:{region}:" in arn
    }
    out: dict[str, set[str]] = {}
    for role in view.roles:
        for a in role_access(role, view).asked:
            owner = tenant_keys.get(a.target.arn or "")
            if not a.allowed or a.action != "kms:Decrypt" or owner is None:
                continue
            session = a.session[1] if a.session else "an untagged session"
            out.setdefault(role.arn, set()).add(owner if session == owner else f"{owner} as {session}")
    return out


def _tenants_through_sessions(rights: set[tuple[str, str]], sessions: Mapping[str, set[str]]) -> list[str]:
    """The tenants whose records a role may decrypt through the sessions of the roles it may assume."""
    assumed = {target for action, target in rights if action == "sts:AssumeRole"}
    return sorted({t for arn in assumed for t in sessions.get(arn, set())})


def beacons_md(review: Mapping[str, Any]) -> list[str]:
    """The summary's beacons section (none without beacon fields)."""
    entries = review.get("beacons") or []
    if not entries:
        return []
    out = [
        "### Beacons: who can compute beacons and find records, per field and region",
        "",
        "Every role asked every request by the policy engine. Compute: `kms:GenerateMac` on the region's beacon "
        "key. Find: that, `kms:Decrypt` on the region's records key (with tenants: on a tenant's key, in a "
        "session of a role it may assume, per tenant) and (DynamoDB) `dynamodb:Query` on the field's beacon index.",
        "",
        "| Field | Region | Compute beacons | Find by it |",
        "|---|---|---|---|",
    ]
    for e in entries:
        cells = " | ".join("<br/>".join(e[k]) or "nobody" for k in ("compute", "find"))
        out.append(f"| `{e['field']}` | `{e['region']}` | {cells} |")
    return [*out, ""]


def beacon_facts(review: Mapping[str, Any]) -> set[str]:
    """The beacons' lines of the review's facts (what a reviewer approves, diffed between reports)."""
    lines = set()
    for e in review.get("beacons") or []:
        lines |= {f"beacon {e['field']} {e['region']}: {p} may compute" for p in e["compute"]}
        lines |= {f"beacon {e['field']} {e['region']}: {p} may find" for p in e["find"]}
    return lines
