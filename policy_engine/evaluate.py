"""AWS's policy evaluation logic within one account, for one request.

1. An explicit Deny that applies (in an identity policy or the resource policy) denies. A Deny
   the engine cannot decide (an unknown operator, element or variable) applies too.
2. KMS keys: the key policy must allow, either the principal directly (its ARN, ``*``) or the
   account (``arn:aws:iam::ACCOUNT:root`` or the bare account id), which delegates to IAM: then
   an identity policy must allow as well.
3. Other resources: an identity policy or the resource policy (naming the principal) allows.
4. Otherwise the implicit deny. An Allow the engine cannot decide never allows.

Statement elements: Effect, Action / NotAction, Resource / NotResource, Principal /
NotPrincipal (AWS principals, service principals, ``*``), Condition. ``*`` and ``?`` are
wildcards in actions and resources; actions are case-insensitive.

``Principal`` naming the account (its root ARN or id) names every principal of the account
(delegation to IAM). ``NotPrincipal`` is read as the IAM User Guide's "NotPrincipal" page
describes it: AWS may validate the account, then the user or role, then the role session, and
a statement excepts a caller only if it names every one of them; the account ARN there
excepts the account principal itself, not its users and roles. When the caller's own identity
is named but not everything above it, whether AWS excepts it is not documented: unknown
(a Deny applies, an Allow does not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policy_engine.conditions import (
    NO_MATCH,
    UNKNOWN,
    Unknown,
    as_list,
    evaluate_condition,
    lower_keys,
    substitute,
    wildcard_match,
)

KNOWN_ELEMENTS = {
    *("Sid", "Effect", "Action", "NotAction", "Resource", "NotResource"),
    *("Principal", "NotPrincipal", "Condition"),
}


def statements(document: Any) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return []
    return [s for s in as_list(document.get("Statement")) if isinstance(s, Mapping)]


@dataclass(frozen=True)
class Caller:
    """Who makes the request. ``arn``: the IAM principal (a role, not its session) or the
    account root; ``service``: a service principal (``dynamodb.amazonaws.com``);
    ``session_arn``: a role's session (``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``), when known."""

    account: str
    arn: str | None = None
    service: str | None = None
    session_arn: str | None = None
    partition: str = "aws"

    @property
    def root(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:root"

    @property
    def is_root(self) -> bool:
        return self.arn == self.root

    def names(self) -> set[str]:
        """Everything a Principal / NotPrincipal element may name to mean this caller."""
        out = {n for n in (self.arn, self.session_arn) if n}
        if self.service is None:
            out |= {self.root, self.account}
        return out


@dataclass(frozen=True)
class Request:
    caller: Caller
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)

    def keys(self) -> dict[str, Any]:
        """Request context with the keys AWS always adds for this caller (lower-cased)."""
        base: dict[str, Any] = {"aws:principalaccount": self.caller.account}
        if self.caller.arn:
            base["aws:principalarn"] = self.caller.arn
        if self.caller.service:
            base["aws:principalservicename"] = self.caller.service
        return {**base, **lower_keys(self.context)}


@dataclass(frozen=True)
class StatementMatch:
    outcome: str  # MATCH / NO_MATCH / UNKNOWN
    principal: str | None = None  # "direct" / "account" (resource policies only)
    requires: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


def _patterns(stmt: Mapping[str, Any], positive: str, negative: str) -> tuple[list[Any], bool] | None:
    if (positive in stmt) == (negative in stmt):
        return None
    return (as_list(stmt[positive]), False) if positive in stmt else (as_list(stmt[negative]), True)


def _covered(patterns: list[Any], value: str, ctx: Mapping[str, Any], *, ignore_case: bool) -> bool:
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise Unknown(f"not a string: {pattern!r}")
        if wildcard_match(substitute(pattern, ctx, literal_wildcards=True), value, ignore_case=ignore_case):
            return True
    return False


def _principal(stmt: Mapping[str, Any], caller: Caller) -> str | None:
    """'direct', 'account' (the statement names the caller's account: delegation to IAM) or None."""
    key = "Principal" if "Principal" in stmt else "NotPrincipal"
    raw = stmt.get(key)
    if raw is None:
        raise Unknown("a resource policy statement without Principal or NotPrincipal")
    entries: list[tuple[str, str]] = []
    if raw == "*":
        entries = [("AWS", "*")]
    elif isinstance(raw, Mapping):
        for kind, values in raw.items():
            if kind not in ("AWS", "Service", "Federated", "CanonicalUser"):
                raise Unknown(f"principal type {kind!r}")
            entries += [(kind, str(v)) for v in as_list(values)]
    else:
        raise Unknown(f"principal {raw!r}")
    if key == "NotPrincipal":
        return None if _excepted(entries, caller) else "direct"
    names = caller.names()
    direct = account = False
    for kind, value in entries:
        if (kind == "Service" and value == caller.service) or (kind == "AWS" and value == "*"):
            direct = True
        elif kind == "AWS" and value in names:
            if value in (caller.root, caller.account) and not caller.is_root:
                account = True
            else:
                direct = True
    return "direct" if direct else "account" if account else None


def _excepted(entries: list[tuple[str, str]], caller: Caller) -> bool:
    """Does a NotPrincipal element except the caller? Every identity AWS may validate (the
    account, the user or role, the role session) must be named; the account ARN names only the
    account principal. Raises Unknown when the caller itself is named but not all above it."""
    aws = {value for kind, value in entries if kind == "AWS"}
    if "*" in aws:
        return True
    if caller.service is not None:
        return ("Service", caller.service) in entries
    if caller.arn is None:
        return False
    named: list[bool | None] = [bool(aws & {caller.root, caller.account})]  # the account
    if not caller.is_root:
        named.append(caller.arn in aws)  # the user or role
        if ":role/" in caller.arn:  # a role acts only through a session
            if caller.session_arn is not None:
                named.append(caller.session_arn in aws)
            else:
                prefix = f"arn:{caller.partition}:sts::{caller.account}:assumed-role/{caller.arn.rsplit('/', 1)[-1]}/"
                named.append(None if any(v.startswith(prefix) for v in aws) else False)
    if named[-1] is False:
        return False  # the caller itself is not named: the statement applies to it
    if all(named):
        return True
    raise Unknown(
        f"NotPrincipal names {caller.session_arn or caller.arn} but not every identity AWS may validate "
        "first (the account ARN, the role ARN, the role session ARN)"
    )


def match_statement(
    stmt: Mapping[str, Any],
    request: Request,
    *,
    resource_policy: bool,
    open_key: Callable[[str], bool] | None = None,
) -> StatementMatch:
    """Does this statement apply to the request (whatever its effect)?"""
    ctx = request.keys()
    try:
        if set(stmt) - KNOWN_ELEMENTS or stmt.get("Effect") not in ("Allow", "Deny"):
            raise Unknown(f"statement elements {sorted(stmt)} / Effect {stmt.get('Effect')!r}")
        actions = _patterns(stmt, "Action", "NotAction")
        resources = _patterns(stmt, "Resource", "NotResource")
        if actions is None or (resources is None and not resource_policy):
            raise Unknown("a statement needs exactly one of Action/NotAction and of Resource/NotResource")
        if _covered(actions[0], request.action, ctx, ignore_case=True) == actions[1]:
            return StatementMatch(NO_MATCH)
        if resources is not None and _covered(resources[0], request.resource, ctx, ignore_case=False) == resources[1]:
            return StatementMatch(NO_MATCH)
        principal = _principal(stmt, request.caller) if resource_policy else "direct"
        if principal is None:
            return StatementMatch(NO_MATCH)
    except Unknown as exc:
        return StatementMatch(UNKNOWN, unknown=(str(exc),))
    cond = evaluate_condition(stmt.get("Condition"), ctx, open_key=open_key)
    return StatementMatch(cond.outcome, principal, cond.requires, cond.unknown)


def sid(stmt: Mapping[str, Any], index: int) -> str:
    value = stmt.get("Sid")
    return value if isinstance(value, str) and value else f"Statement{index}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass
class _Scan:
    denies: list[str] = field(default_factory=list)
    direct: list[str] = field(default_factory=list)
    account: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _scan(docs: Iterable[tuple[str, Any]], request: Request, *, resource_policy: bool) -> _Scan:
    out = _Scan()
    for label, doc in docs:
        for index, stmt in enumerate(statements(doc)):
            m = match_statement(stmt, request, resource_policy=resource_policy)
            where = f"{label} {sid(stmt, index)}"
            if m.outcome == NO_MATCH:
                continue
            if stmt.get("Effect") != "Allow":  # Deny, or an Effect not understood: fail closed
                note = f" (not understood: {'; '.join(m.unknown)})" if m.outcome == UNKNOWN else ""
                out.denies.append(where + note)
            elif m.outcome == UNKNOWN:
                out.unknown.append(f"{where} (not understood: {'; '.join(m.unknown)})")
            else:
                (out.direct if m.principal == "direct" else out.account).append(where)
    return out


def authorize(
    request: Request,
    *,
    identity_policies: Iterable[tuple[str, Any]] = (),
    resource_policy: tuple[str, Any] | None = None,
    resource_policy_required: bool = False,
    identity_allows_all: bool = False,
) -> Decision:
    """The decision for one request in one account.

    ``resource_policy_required``: KMS keys (nothing is allowed that the key policy does not
    allow). ``identity_allows_all``: the caller is the account root (IAM allows it everything).
    """
    ident = _scan(identity_policies, request, resource_policy=False)
    res = _scan([resource_policy] if resource_policy else [], request, resource_policy=True)
    denies = ident.denies + res.denies
    if denies:
        return Decision(False, f"explicit deny: {denies[0]}")
    identity_ok = identity_allows_all or bool(ident.direct)
    identity_via = "the account root" if identity_allows_all else (ident.direct[0] if ident.direct else "")
    if res.direct:
        return Decision(True, f"{res.direct[0]} allows the principal")
    if resource_policy_required:
        if not res.account:
            return Decision(False, _no_allow(request, resource_policy, res.unknown, "key policy"))
        if identity_ok:
            return Decision(True, f"{res.account[0]} delegates to IAM and {identity_via} allows")
        return Decision(False, _no_allow(request, None, ident.unknown, "identity policy"))
    if identity_ok:
        return Decision(True, f"{identity_via} allows")
    return Decision(False, _no_allow(request, None, ident.unknown + res.unknown, "identity policy"))


def _no_allow(request: Request, policy: tuple[str, Any] | None, unknown: list[str], what: str) -> str:
    if policy:
        text = f"the {policy[0]} does not allow {request.action} for this principal and request"
    else:
        text = f"no {what} allows {request.action} on {request.resource} for this request"
    return text + (f"; ignored: {unknown[0]}" if unknown else "")
