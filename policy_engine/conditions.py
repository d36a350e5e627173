"""IAM condition operators, evaluated the way AWS documents them.

Reference: "IAM JSON policy elements: Condition operators" (IAM User Guide). Three outcomes:
``MATCH``, ``NO_MATCH`` and ``UNKNOWN`` (an operator, value or variable this engine cannot
decide). Callers fail closed on ``UNKNOWN``: it never lets an Allow apply and always lets a
Deny apply.

- Operators in one Condition block, and keys in one operator, are ANDed; the values listed
  for one key are ORed (for negated operators: the request value must match none of them).
- A key absent from the request: the condition is false, except for negated operators (true),
  ``...IfExists`` (true) and ``Null`` (decides on absence itself).
- ``ForAllValues:`` is true when every request value matches (and when the key is absent or
  empty); ``ForAnyValue:`` is true when at least one does (false when absent).
- Condition keys are case-insensitive; values are case-sensitive unless the operator says so.
- Policy variables (``${aws:username}``) are replaced from the request; one the request does
  not carry makes the condition ``UNKNOWN``. ``${*}``, ``${?}`` and ``${$}`` are the escapes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MATCH, NO_MATCH, UNKNOWN = "match", "no-match", "unknown"

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


class Unknown(Exception):
    """Something the engine does not understand: the caller fails closed."""


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def lower_keys(context: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in context.items()}


def substitute(text: str, context: Mapping[str, Any], *, literal_wildcards: bool = False) -> str:
    """Replace policy variables from the (lower-cased) request context. A variable the request
    does not carry (or a multi-valued one) raises Unknown. With ``literal_wildcards`` the
    escapes ${*} and ${?} become escaped wildcard characters (\\x00 markers for the matcher)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _ESCAPES:
            return "\x00" + name if literal_wildcards and name in "*?" else _ESCAPES[name]
        key, _, default = name.partition(",")
        value = context.get(key.strip().lower())
        if value is None and default:
            value = default.strip().strip("'")
        if value is None or isinstance(value, list | tuple):
            raise Unknown(f"policy variable ${{{name}}} is not in the request")
        return str(value)

    return _VARIABLE.sub(one, text) if "${" in text else text


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """``*`` matches any run of characters, ``?`` exactly one (``\\x00`` marks a literal)."""
    return _wildcard_regex(pattern, ignore_case).fullmatch(value) is not None


@functools.lru_cache(maxsize=4096)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # Compiled once per pattern: exhaustive questions (offline/verification/permissions.py) match
    # the same few patterns against tens of thousands of actions and resources.
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\x00" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(out), flags)


def arn_match(pattern: str, value: str) -> bool:
    """ArnEquals / ArnLike: the six colon-separated parts match one by one (wildcards allowed)."""
    p_parts, v_parts = pattern.split(":", 5), value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(wildcard_match(p, v) for p, v in zip(p_parts, v_parts, strict=True))


def _number(text: Any) -> float:
    if isinstance(text, bool):
        raise ValueError(text)
    return float(text)


def _date(text: Any) -> datetime:
    if isinstance(text, int | float) and not isinstance(text, bool):
        return datetime.fromtimestamp(text, UTC)
    s = str(text).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", s):
        return datetime.fromtimestamp(float(s), UTC)
    parsed = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bool(text: Any) -> bool:
    s = str(text).lower()
    if s not in ("true", "false"):
        raise ValueError(text)
    return s == "true"


def _bytes(text: Any) -> bytes:
    if isinstance(text, bytes | bytearray):
        return bytes(text)
    return base64.b64decode(str(text), validate=True)


_COMPARE: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any], bool]]] = {
    "NumericEquals": (_number, lambda a, e: a == e),
    "NumericLessThan": (_number, lambda a, e: a < e),
    "NumericLessThanEquals": (_number, lambda a, e: a <= e),
    "NumericGreaterThan": (_number, lambda a, e: a > e),
    "NumericGreaterThanEquals": (_number, lambda a, e: a >= e),
    "DateEquals": (_date, lambda a, e: a == e),
    "DateLessThan": (_date, lambda a, e: a < e),
    "DateLessThanEquals": (_date, lambda a, e: a <= e),
    "DateGreaterThan": (_date, lambda a, e: a > e),
    "DateGreaterThanEquals": (_date, lambda a, e: a >= e),
    "Bool": (_bool, lambda a, e: a == e),
    "BinaryEquals": (_bytes, lambda a, e: a == e),
}
# Negated operator -> the positive operator it negates.
NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NotIpAddress": "IpAddress",
}
POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "IpAddress", *_COMPARE}
OPERATORS = POSITIVE | set(NEGATED) | {"Null"}


def _one(op: str, expected: Any, actual: Any, context: Mapping[str, Any]) -> bool:
    """Does one request value match one policy value under a positive operator?"""
    if op in _COMPARE:
        parse, compare = _COMPARE[op]
        try:
            wanted = parse(expected)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise Unknown(f"{op} cannot read the policy value {expected!r}") from exc
        try:
            return compare(parse(actual), wanted)
        except (ValueError, TypeError, binascii.Error):
            return False  # a request value of the wrong type does not match
    if op == "IpAddress":
        try:
            network = ipaddress.ip_network(str(expected), strict=False)
        except ValueError as exc:
            raise Unknown(f"IpAddress cannot read {expected!r}") from exc
        try:
            return ipaddress.ip_address(str(actual)) in network
        except ValueError:
            return False
    if not isinstance(expected, str) or isinstance(actual, dict | list):
        expected = str(expected).lower() if isinstance(expected, bool) else str(expected)
    pattern = substitute(expected, context, literal_wildcards=op in ("StringLike", "ArnLike", "ArnEquals"))
    actual = str(actual).lower() if isinstance(actual, bool) else str(actual)
    if op == "StringEquals":
        return actual == pattern
    if op == "StringEqualsIgnoreCase":
        return actual.lower() == pattern.lower()
    if op == "StringLike":
        return wildcard_match(pattern, actual)
    return arn_match(pattern, actual)  # ArnEquals, ArnLike


def _any_expected(op: str, expected: Sequence[Any], actual: Any, context: Mapping[str, Any]) -> bool:
    return any(_one(op, e, actual, context) for e in expected)


@dataclass(frozen=True)
class Operator:
    base: str  # the positive operator, or "Null"
    negated: bool
    if_exists: bool
    qualifier: str | None  # "ForAllValues", "ForAnyValue" or None

    @classmethod
    def parse(cls, raw: str) -> Operator:
        qualifier, _, name = raw.rpartition(":")
        if qualifier not in ("", "ForAllValues", "ForAnyValue"):
            raise Unknown(f"unknown set operator {qualifier!r} in {raw!r}")
        if_exists = name.endswith("IfExists") and name != "IfExists"
        name = name.removesuffix("IfExists") if if_exists else name
        if name not in OPERATORS or (name == "Null" and (if_exists or qualifier)):
            raise Unknown(f"unknown condition operator {raw!r}")
        negated = name in NEGATED
        return cls(NEGATED.get(name, name), negated, if_exists, qualifier or None)


def _test(op: Operator, expected: list[Any], values: list[Any], present: bool, ctx: Mapping[str, Any]) -> bool:
    if op.base == "Null":
        wanted = [_bool(e) for e in expected]  # "true": the key must be absent
        return any(w == (not present) for w in wanted)
    if op.qualifier == "ForAllValues":
        if not present:
            return True
        return all(_any_expected(op.base, expected, v, ctx) != op.negated for v in values)
    if op.qualifier == "ForAnyValue":
        if not present:
            return False
        return any(_any_expected(op.base, expected, v, ctx) != op.negated for v in values)
    if not present:
        return op.if_exists or op.negated
    if len(values) != 1:
        raise Unknown("a multi-valued key needs ForAllValues: or ForAnyValue:")
    hit = _any_expected(op.base, expected, values[0], ctx)
    return not hit if op.negated else hit


def evaluate_operator(raw_op: str, key: str, expected_raw: Any, context: Mapping[str, Any]) -> str:
    """One (operator, key, values) triple against a lower-cased request context."""
    try:
        op = Operator.parse(raw_op)
        expected = as_list(expected_raw)
        if not expected:
            raise Unknown(f"{raw_op} {key} lists no value")
        actual = context.get(key.lower())
        values = as_list(actual)
        present = actual is not None and (not isinstance(actual, list | tuple) or bool(values))
        return MATCH if _test(op, expected, values, present, context) else NO_MATCH
    except Unknown:
        return UNKNOWN
    except ValueError:
        return UNKNOWN


@dataclass(frozen=True)
class ConditionResult:
    outcome: str  # MATCH, NO_MATCH, UNKNOWN
    requires: tuple[str, ...] = ()  # conditions on open keys (what a request must carry)
    unknown: tuple[str, ...] = ()  # what was not understood


def requirement_text(raw_op: str, key: str, values: Any, context: Mapping[str, Any] | None = None) -> str:
    """What a request must carry; a policy variable the request context carries is stated as its value
    (``${aws:PrincipalTag/tenant}`` of a session tagged ``tenant=acme``: ``acme``)."""
    return f"{key} {raw_op} {' | '.join(_stated(v, context or {}) for v in as_list(values))}"


def _stated(value: Any, context: Mapping[str, Any]) -> str:
    try:
        return substitute(value, context) if isinstance(value, str) else str(value)
    except Unknown:
        return str(value)


def evaluate_condition(
    condition: Any, context: Mapping[str, Any], *, open_key: Callable[[str], bool] | None = None
) -> ConditionResult:
    """A whole Condition block. ``open_key``: keys the request chooses and this question leaves
    open (the policy review asks "for some request"): their conditions become requirements."""
    if condition is None or condition == {}:
        return ConditionResult(MATCH)
    if not isinstance(condition, Mapping):
        return ConditionResult(UNKNOWN, unknown=("Condition is not an object",))
    ctx = lower_keys(context)
    requires: list[str] = []
    unknown: list[str] = []
    failed = False
    for raw_op, pairs in condition.items():
        if not isinstance(pairs, Mapping) or not pairs:
            unknown.append(f"{raw_op} has no key")
            continue
        for key, values in pairs.items():
            if open_key is not None and key.lower() not in ctx and open_key(key):
                requires.append(requirement_text(raw_op, key, values, ctx))
                continue
            outcome = evaluate_operator(raw_op, key, values, ctx)
            if outcome == UNKNOWN:
                unknown.append(requirement_text(raw_op, key, values))
            elif outcome == NO_MATCH:
                failed = True
    if failed:
        return ConditionResult(NO_MATCH)
    if unknown:
        return ConditionResult(UNKNOWN, unknown=tuple(unknown))
    return ConditionResult(MATCH, requires=tuple(sorted(requires)))
