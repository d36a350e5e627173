"""Readable policy statements, and "can this principal do this action on this resource?".

The evaluation follows AWS's rules for one account: an explicit Deny wins; a KMS call needs the key
policy to allow the principal itself, or to allow the account (which delegates to IAM) and an
identity policy to allow it too; a table without a resource policy is decided by identity
policies alone. It answers for *some* request rather than one: conditions on what the caller
chooses (the encryption context, ``kms:ViaService`` through a service...) are reported as what the
request must carry, and only conditions on who the caller is are decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policy_engine import UNKNOWN, Caller, Request, as_list, match_statement, role_kind, statements, wildcard_match

__all__ = ["as_list", "role_kind", "statements"]

ALLOW, IF_IAM, DENY = "allow", "if-iam", "deny"
_RANK = {DENY: 0, IF_IAM: 1, ALLOW: 2}

# Condition keys describing the caller: decided against the principal. Any other key is chosen by
# the request (encryption context, replica region...) and becomes a requirement.
PRINCIPAL_KEYS = {
    "aws:principalarn",
    "aws:principalaccount",
    "aws:sourceaccount",
    "kms:calleraccount",
    "kms:viaservice",
    "aws:principaltype",
    "aws:principalservicename",
}


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return wildcard_match(pattern, value, ignore_case=ignore_case)


# -- readable forms ---------------------------------------------------------------------------------
def principal_text(principal: Any, account: str) -> list[str]:
    if principal is None:
        return []
    if principal == "*":
        return ["everyone (*)"]
    out = []
    for kind, values in sorted(principal.items()) if isinstance(principal, Mapping) else [("AWS", principal)]:
        for value in as_list(values):
            value = str(value)
            if kind == "AWS" and (
                value in (f"arn:aws:iam::{account}:root", account) or value.endswith(f"::{account}:root")
            ):
                out.append(f"account {account} (delegates to IAM policies)")
            elif kind == "AWS" and value == "*":
                out.append("everyone (*)")
            elif kind == "Service":
                out.append(f"service {value}")
            else:
                out.append(f"{kind.lower()} {value}")
    return sorted(out)


def condition_text(condition: Any) -> list[str]:
    out = []
    for operator, pairs in sorted((condition or {}).items()):
        for key, values in sorted((pairs or {}).items()):
            out.append(f"{key} {operator} {' | '.join(str(v) for v in as_list(values))}")
    return out


def readable_statement(stmt: Mapping[str, Any], index: int, account: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sid": stmt.get("Sid") or f"Statement{index}",
        "effect": stmt.get("Effect", "Allow"),
    }
    if "Principal" in stmt:
        out["principals"] = principal_text(stmt["Principal"], account)
    if "NotPrincipal" in stmt:
        out["not_principals"] = principal_text(stmt["NotPrincipal"], account)
    for key, name in (("Action", "actions"), ("NotAction", "not_actions")):
        if key in stmt:
            out[name] = sorted(str(a) for a in as_list(stmt[key]))
    for key, name in (("Resource", "resources"), ("NotResource", "not_resources")):
        if key in stmt:
            out[name] = sorted(str(r) for r in as_list(stmt[key]))
    out["conditions"] = condition_text(stmt.get("Condition"))
    return out


# -- evaluation -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """Who asks. ``identity``: the identity policies (``None``: not known to this review, i.e.
    outside the app; ``"all"``: everything, as the root user or a service acting on a grant)."""

    label: str
    kind: str  # role, root, account, pattern, explicit, service, via-service
    arn: str | None = None
    service: str | None = None
    region: str | None = None
    identity: list[tuple[str, dict[str, Any]]] | str | None = None
    facts: Mapping[str, str | None] = field(default_factory=dict)  # principal condition keys
    # Only resource-policy statements conditioned on this key apply (a service acting for the
    # account, e.g. kms:ViaService, is not the account's administrator).
    only_with_condition: str | None = None

    def fact(self, key: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.facts.items()}
        return lowered.get(key.lower())


@dataclass(frozen=True)
class Grant:
    """One way a statement (or a key + identity pair) allows the action."""

    via: tuple[str, ...]
    requires: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    verdict: str
    grants: tuple[Grant, ...] = ()
    denied_by: tuple[str, ...] = ()

    @property
    def best(self) -> Grant | None:
        return min(self.grants, key=lambda g: (len(g.requires), g.via, g.requires)) if self.grants else None


def _caller(principal: Principal, account: str) -> Caller:
    partition = (principal.arn or "arn:aws:").split(":")[1] or "aws"
    return Caller(account=account, arn=principal.arn, service=principal.service, partition=partition)


def _open_key(key: str) -> bool:
    """Keys the request chooses (left open: they become requirements), not facts of the caller."""
    return key.lower() not in PRINCIPAL_KEYS


def _merge(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...] | None:
    """Both sets of request requirements, or None when two StringEquals on one key disagree."""
    eq: dict[str, set[str]] = {}
    for req in (*a, *b):
        key, op, values = req.split(" ", 2)
        if op == "StringEquals":
            wanted = set(values.split(" | "))
            eq[key.lower()] = eq.get(key.lower(), wanted) & wanted
            if not eq[key.lower()]:
                return None
    return tuple(sorted(set(a) | set(b)))


def _has_condition(stmt: Mapping[str, Any], key: str | None) -> bool:
    if key is None:
        return True
    return any(k.lower() == key.lower() for pairs in (stmt.get("Condition") or {}).values() for k in (pairs or {}))


def _scan(
    docs: Iterable[tuple[str, Mapping[str, Any]]],
    principal: Principal,
    action: str,
    resource: str,
    account: str,
    *,
    resource_policy: bool,
) -> tuple[list[tuple[str, str, tuple[str, ...]]], list[str]]:
    """([(match kind, via, requires)] of allows, [via] of denies that surely apply), decided by
    the policy engine; a Deny the engine does not understand counts as applying."""
    facts = {k: v for k, v in principal.facts.items() if v is not None}
    request = Request(_caller(principal, account), action, resource, facts)
    allows, denies = [], []
    for label, doc in docs:
        for index, stmt in enumerate(statements(doc)):
            if resource_policy and not _has_condition(stmt, principal.only_with_condition):
                continue
            m = match_statement(stmt, request, resource_policy=resource_policy, open_key=_open_key)
            via = f"{label}/{stmt.get('Sid') or f'Statement{index}'}"
            if stmt.get("Effect") != "Allow":
                if m.outcome == UNKNOWN or (m.outcome == "match" and not m.requires):
                    denies.append(via)
            elif m.outcome == "match":
                allows.append((m.principal or "direct", via, m.requires))
    return allows, denies


def evaluate(
    principal: Principal,
    action: str,
    resource_arn: str,
    resource_policy: tuple[str, Mapping[str, Any]] | None,
    account: str,
    *,
    needs_resource_policy: bool,
) -> Decision:
    """May ``principal`` call ``action`` on the resource (for some request)?

    ``needs_resource_policy``: KMS keys (nothing is allowed that the key policy does not allow);
    DynamoDB tables without a resource policy are decided by identity policies alone.
    """
    res_allows, res_denies = (
        _scan([resource_policy], principal, action, resource_arn, account, resource_policy=True)
        if resource_policy
        else ([], [])
    )
    if isinstance(principal.identity, list):
        id_allows, id_denies = _scan(
            principal.identity, principal, action, resource_arn, account, resource_policy=False
        )
    else:
        id_allows, id_denies = [], []
    if res_denies or id_denies:
        return Decision(DENY, denied_by=tuple(sorted(res_denies + id_denies)))

    grants: list[Grant] = [Grant((via,), req) for kind, via, req in res_allows if kind == "direct"]
    delegating = [(via, req) for kind, via, req in res_allows if kind == "account"]
    if not needs_resource_policy and not resource_policy:
        delegating = [("no resource policy", ())]
    # Through the account: an identity policy must allow too (the root user and services acting on
    # a grant are allowed everything by IAM).
    for res_via, res_req in delegating:
        if principal.identity == "all":
            via = (res_via,) if res_via != "no resource policy" else ("implicit IAM permission (no resource policy)",)
            grants.append(Grant(via, res_req))
        for _kind, id_via, id_req in id_allows:
            merged = _merge(res_req, id_req)
            if merged is not None:
                via = (id_via,) if res_via == "no resource policy" else (res_via, id_via)
                grants.append(Grant(via, merged))
    if grants:
        return Decision(ALLOW, grants=tuple(sorted(set(grants), key=lambda g: (g.via, g.requires))))
    if delegating and principal.identity is None:
        requires = tuple(sorted({r for _, req in delegating for r in req}))
        vias = tuple(sorted(v for v, _ in delegating if v != "no resource policy"))
        return Decision(IF_IAM, grants=(Grant(vias, requires),))
    return Decision(DENY)


def best_of(decisions: Mapping[str, Decision]) -> str:
    return max((d.verdict for d in decisions.values()), key=_RANK.__getitem__, default=DENY)
