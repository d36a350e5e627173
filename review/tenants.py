"""Per tenant and region: who can decrypt and who can generate data keys with the tenant's key, with
what the request must carry, and where the tenant's key does not exist (README "Tenants").

Decided by the one policy engine, exhaustively (cloud_assembly/role_access.py on the templates, as
the role contracts are checked): every role of the deployment is asked every request on every key,
a tenant-access role as an untagged session and as a session of each tenant, KMS requests with the
toolkit's encryption context for each tenant. A tenant is the value of a key's ``tenant`` tag; a
region where no key carries it is where the tenant's records cannot be decrypted. Roles outside the
deployment are covered by the key policies, in each region's matrices.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cloud_assembly.contracts import contract_for
from cloud_assembly.reader import CloudAssembly
from cloud_assembly.role_access import Asked, DeploymentView, role_access
from lambda_src.record_crypto.settings import TENANT_KEY
from review.policy import Principal
from review.role_view import deployment_view

USES = {"kms:Decrypt": "decrypt", "kms:GenerateDataKey": "generate_data_key"}
CONTEXT = "kms:EncryptionContext:"


def as_tenant_session(principal: Principal, key_tags: Mapping[str, str]) -> Principal:
    """The principal as the matrices ask it about a key tagged ``tenant=T``: the key's tag is a fact of
    every request on it, and a principal whose policies read its session tag (a tenant-access role) is
    asked as a session tagged ``T`` (what sessions of other tenants may do is the Tenants section's)."""
    tenant = key_tags.get(TENANT_KEY)
    if tenant is None:
        return principal
    facts = {**principal.facts, f"aws:ResourceTag/{TENANT_KEY}": tenant}
    label = principal.label
    if isinstance(principal.identity, list) and f"${{aws:PrincipalTag/{TENANT_KEY}}}" in json.dumps(principal.identity):
        facts[f"aws:PrincipalTag/{TENANT_KEY}"] = tenant
        label = f"{label}, as a session tagged {TENANT_KEY}={tenant}"
    return replace(principal, facts=facts, label=label)


def _who(asked: Asked, view: DeploymentView, role_arn: str) -> str:
    role = next(r for r in view.roles if r.arn == role_arn)
    contract = contract_for(role.stem)
    title = contract.title if contract else "the role"
    return f"{title} ({role.region}) {role.stack}/{role.stem}"


def _carries(asked: Asked) -> str:
    context = {k.removeprefix(CONTEXT): v for k, v in asked.outcome.probe.keys.items() if k.startswith(CONTEXT)}
    parts = [f"encryption context {', '.join(f'{k}={v}' for k, v in sorted(context.items()))}"] if context else []
    if asked.session:
        parts.insert(0, f"a session tagged {asked.session[0]}={asked.session[1]}")
    return "; ".join(parts) or "nothing"


def tenant_access(assembly: CloudAssembly) -> list[dict[str, Any]]:
    """One entry per tenant and region of the deployment: the key there (or None), and who may
    decrypt and generate data keys with it (principal, what the request must carry). Empty
    without tenants."""
    view = deployment_view(assembly)
    tenants = view.tag_values(TENANT_KEY)
    if not tenants:
        return []
    regions = sorted({r.region for r in view.resources})
    keys = {
        (tags[TENANT_KEY], arn.split(":")[3]): arn for arn, tags in view.resource_tags.items() if TENANT_KEY in tags
    }
    found: dict[tuple[str, str], dict[str, set[tuple[str, str]]]] = {}
    for role in view.roles:
        for asked in role_access(role, view).asked:
            tenant = asked.target.keys.get(f"aws:ResourceTag/{TENANT_KEY}")
            if asked.allowed and tenant is not None and asked.action in USES:
                cell = found.setdefault((tenant, asked.target.region), {use: set() for use in USES.values()})
                cell[USES[asked.action]].add((_who(asked, view, role.arn), _carries(asked)))
    out = []
    for tenant in tenants:
        for region in regions:
            cell = found.get((tenant, region), {})
            entry: dict[str, Any] = {"tenant": tenant, "region": region, "key": keys.get((tenant, region))}
            for use in USES.values():
                entry[use] = [{"principal": p, "carries": c} for p, c in sorted(cell.get(use, ()))]
            out.append(entry)
    return out


def _cell(rows: Sequence[Mapping[str, str]]) -> str:
    return "<br/>".join(f"{r['principal']}, with {r['carries']}".replace("|", "\\|") for r in rows) or "nobody"


def tenants_md(review: Mapping[str, Any]) -> list[str]:
    """The summary's tenants section (none without tenants)."""
    entries = review.get("tenants") or []
    if not entries:
        return []
    out = [
        "### Tenants: who can decrypt and generate data keys, per tenant and region",
        "",
        "Every role of the deployment asked every request by the policy engine (a tenant-access role as a "
        "session of each tenant and untagged); a region without the tenant's key cannot decrypt its records.",
        "",
        "| Tenant | Region | Key | Decrypt | GenerateDataKey |",
        "|---|---|---|---|---|",
    ]
    for e in entries:
        if e["key"] is None:
            out.append(
                f"| `{e['tenant']}` | `{e['region']}` | **no key here**: its records cannot be decrypted | — | — |"
            )
        else:
            cells = f"{_cell(e['decrypt'])} | {_cell(e['generate_data_key'])}"
            out.append(f"| `{e['tenant']}` | `{e['region']}` | `{e['key']}` | {cells} |")
    return [*out, ""]


def tenant_facts(review: Mapping[str, Any]) -> set[str]:
    """The tenants' lines of the review's facts (what a reviewer approves, diffed between reports)."""
    lines = set()
    for e in review.get("tenants") or []:
        if e["key"] is None:
            lines.add(f"tenant {e['tenant']} {e['region']}: no key")
        for use in USES.values():
            lines |= {f"tenant {e['tenant']} {e['region']}: {r['principal']} {use} with {r['carries']}" for r in e[use]}
    return lines
