"""Decide many requests of one principal at once: what it may do, as a whole.

``decide_all`` gives the decision of ``authorize`` for every probe (action, resource, request
keys, the resource's policy). Most probes of an exhaustive question name an action that no
Allow statement could cover; those are denied without evaluating them (a request is allowed
only through an Allow statement whose Action / NotAction covers it: in an identity policy, or
in the resource policy naming the principal itself). The result is the same as evaluating
every probe (tests/policy_engine/test_exhaustive.py checks that on policies built to trip it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy_engine.conditions import as_list, wildcard_match
from policy_engine.evaluate import Caller, Decision, Request, authorize, statements


@dataclass(frozen=True)
class Probe:
    """One request to decide. ``resource_policy``: the resource's own policy (a key policy), with
    ``resource_policy_required`` for KMS keys (nothing is allowed that it does not allow)."""

    action: str
    resource: str
    keys: Mapping[str, Any] = field(default_factory=dict)
    resource_policy: tuple[str, Any] | None = None
    resource_policy_required: bool = False


@dataclass(frozen=True)
class Outcome:
    probe: Probe
    decision: Decision
    evaluated: bool  # False: no Allow statement could cover the action (denied without evaluation)


def _covers(stmt: Mapping[str, Any], action: str) -> bool:
    """Could this Allow statement's Action / NotAction cover ``action``? True when unsure."""
    negated = "NotAction" in stmt
    patterns = as_list(stmt.get("NotAction" if negated else "Action"))
    if any(not isinstance(p, str) or "${" in p for p in patterns):
        return True
    return any(wildcard_match(p, action, ignore_case=True) for p in patterns) != negated


def _may_name_directly(stmt: Mapping[str, Any], caller: Caller) -> bool:
    """Could this resource-policy statement name the caller itself (not only its account)? True
    when unsure: a principal the delegation covers needs an identity policy anyway."""
    if "Principal" not in stmt:
        return True
    raw = stmt["Principal"]
    if not isinstance(raw, Mapping):
        return True
    direct = {caller.arn, caller.session_arn, "*"} - {None}
    if caller.is_root:
        direct |= {caller.root, caller.account}
    for kind, values in raw.items():
        for value in as_list(values):
            if (kind == "AWS" and value in direct) or (kind == "Service" and value == caller.service):
                return True
            if kind not in ("AWS", "Service"):
                return True
    return False


class Prefilter:
    """Could any Allow statement grant this action to the caller (identity policies, or the
    resource policy naming the caller itself)? False means the request is surely denied."""

    def __init__(self, caller: Caller, identity: Sequence[tuple[str, Any]]) -> None:
        self.caller = caller
        self.identity = [s for _, doc in identity for s in statements(doc) if s.get("Effect") == "Allow"]
        self._resource: dict[int, list[Mapping[str, Any]]] = {}
        self._cache: dict[tuple[str, int], bool] = {}

    def _direct(self, policy: tuple[str, Any] | None) -> list[Mapping[str, Any]]:
        if policy is None:
            return []
        key = id(policy[1])
        if key not in self._resource:
            self._resource[key] = [
                s for s in statements(policy[1]) if s.get("Effect") == "Allow" and _may_name_directly(s, self.caller)
            ]
        return self._resource[key]

    def could_allow(self, action: str, resource_policy: tuple[str, Any] | None = None) -> bool:
        key = (action.lower(), id(resource_policy[1]) if resource_policy else 0)
        if key not in self._cache:
            candidates = [*self.identity, *self._direct(resource_policy)]
            self._cache[key] = any(_covers(s, action) for s in candidates)
        return self._cache[key]


def decide_all(caller: Caller, identity_policies: Sequence[tuple[str, Any]], probes: Iterable[Probe]) -> list[Outcome]:
    """The decision for every probe, in order."""
    prefilter = Prefilter(caller, identity_policies)
    out = []
    for probe in probes:
        if not prefilter.could_allow(probe.action, probe.resource_policy):
            out.append(Outcome(probe, Decision(False, f"no Allow statement names {probe.action}"), False))
            continue
        decision = authorize(
            Request(caller, probe.action, probe.resource, probe.keys),
            identity_policies=identity_policies,
            resource_policy=probe.resource_policy,
            resource_policy_required=probe.resource_policy_required,
        )
        out.append(Outcome(probe, decision, True))
    return out
