"""Readable policy statements, and "can this principal do this action on this resource?".

The evaluation follows AWS's rules for one account: an explicit Deny wins; a KMS call needs the key
policy to allow the principal itself, or to allow the account (which delegates to IAM) and an
identity policy to allow it too; a table without a resource policy is decided by identity
policies alone. It answers for *some* request rather than one: conditions on what the caller
chooses (the encryption context, ``kms:ViaService`` through a service...) are reported as what the
request must carry, and only conditions on who the caller is are decided here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def statements(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, Mapping):
        return []
    return [s for s in as_list(document.get("Statement")) if isinstance(s, Mapping)]  # type: ignore[misc]


def role_kind(path: Any, construct_path: str) -> str | None:
    """'reader', 'writer' or None: the IAM path's last segment, else a ``Reader``/``Writer``
    construct in the construct path (shared by the review and ``cdk_constructs.nag_rules``)."""
    if isinstance(path, str):
        segments = [s for s in path.split("/") if s]
        if segments and segments[-1].lower() in ("reader", "writer"):
            return segments[-1].lower()
    for segment in reversed(construct_path.split("/")):
        if segment.lower() in ("reader", "writer"):
            return segment.lower()
    return None


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


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


def _operator(raw: str) -> tuple[str, bool, bool]:
    """(base operator, if-exists, negated)."""
    op = raw.split(":", 1)[1] if ":" in raw and raw.split(":", 1)[0] in ("ForAnyValue", "ForAllValues") else raw
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    negated = "Not" in op and op not in ("Null",)
    return op, if_exists, negated


def _test(op: str, expected: Sequence[str], actual: str) -> bool:
    base = op.replace("Not", "")
    if base in ("StringEquals", "ArnEquals", "Bool"):
        hit = actual in expected
    elif base == "StringEqualsIgnoreCase":
        hit = actual.lower() in (e.lower() for e in expected)
    elif base in ("StringLike", "ArnLike"):
        hit = any(matches(e, actual) for e in expected)
    else:
        return True  # numeric/date/IP on a principal key: not used here, never decisive
    return not hit if "Not" in op else hit


def conditions(stmt: Mapping[str, Any], principal: Principal) -> tuple[str, ...] | None:
    """None if the statement's conditions exclude this principal; else what the request must carry."""
    requires = []
    for raw_op, pairs in (stmt.get("Condition") or {}).items():
        op, if_exists, _ = _operator(raw_op)
        for key, values in (pairs or {}).items():
            expected = [str(v) for v in as_list(values)]
            if key.lower() in PRINCIPAL_KEYS:
                actual = principal.fact(key)
                if op == "Null":
                    if (actual is None) != (expected[0].lower() == "true"):
                        return None
                elif actual is None:
                    if not (if_exists or "Not" in op):
                        return None
                elif not _test(op, expected, actual):
                    return None
            else:
                requires.append(f"{key} {raw_op} {' | '.join(expected)}")
    return tuple(sorted(requires))


def _covers(patterns: Any, value: str, *, ignore_case: bool) -> bool:
    return any(isinstance(p, str) and matches(p, value, ignore_case=ignore_case) for p in as_list(patterns))


def _action_resource(stmt: Mapping[str, Any], action: str, resource: str, *, resource_is_this: bool) -> bool:
    if "NotAction" in stmt:
        if _covers(stmt["NotAction"], action, ignore_case=True):
            return False
    elif not _covers(stmt.get("Action"), action, ignore_case=True):
        return False
    if resource_is_this:
        # In a key or table resource policy, "*" (or the resource's own ARN) means this resource.
        return "NotResource" not in stmt and (
            _covers(stmt.get("Resource", "*"), resource, ignore_case=False) or "*" in as_list(stmt.get("Resource"))
        )
    if "NotResource" in stmt:
        return not _covers(stmt["NotResource"], resource, ignore_case=False)
    return _covers(stmt.get("Resource"), resource, ignore_case=False)


def _principal_match(stmt: Mapping[str, Any], principal: Principal, account: str) -> str | None:
    """'direct' (the statement names this principal), 'account' (names the account), or None."""
    root = f"arn:aws:iam::{account}:root"
    if "NotPrincipal" in stmt:
        return "direct"  # not used by the toolkit; shown as possible
    raw = stmt.get("Principal")
    if raw == "*":
        return "direct"
    if not isinstance(raw, Mapping):
        return None
    for service in as_list(raw.get("Service")):
        if principal.service and service == principal.service:
            return "direct"
    aws = [str(v) for v in as_list(raw.get("AWS"))]
    if "*" in aws or (principal.arn and principal.arn in aws):
        return "direct"
    if principal.service is None and any(v in (root, account) or v.endswith(f"::{account}:root") for v in aws):
        return "direct" if principal.kind == "root" else "account"
    return None


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
    """([(match kind, via, requires)] of allows, [via] of denies that surely apply)."""
    allows, denies = [], []
    for label, doc in docs:
        for index, stmt in enumerate(statements(doc)):
            if not _action_resource(stmt, action, resource, resource_is_this=resource_policy):
                continue
            kind = _principal_match(stmt, principal, account) if resource_policy else "direct"
            if kind is None or (resource_policy and not _has_condition(stmt, principal.only_with_condition)):
                continue
            requires = conditions(stmt, principal)
            if requires is None:
                continue
            via = f"{label}/{stmt.get('Sid') or f'Statement{index}'}"
            if stmt.get("Effect") == "Deny":
                if not requires:
                    denies.append(via)
            else:
                allows.append((kind, via, requires))
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
