"""The library's value contract: every Python value a caller can pass ``RecordService.put`` is either
stored and returned as it went in, or refused with a ``RecordError`` subclass (never ``Internal``) whose
message names the field. Property-based over Python values, not only JSON ones (hypothesis)."""

from __future__ import annotations

import datetime
import enum
import types
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.runtime.conftest import PRIMARY, TwoRegions

SENSITIVE_FIELD = "ssn"  # in the fixture's SENSITIVE_FIELDS: encrypted
PLAIN_FIELD = "note"  # not sensitive: a signed DynamoDB attribute


class Colour(enum.IntEnum):
    RED = 1


class Tag(str):
    pass


class Big(int):
    """An int whose repr hypothesis can print (past 4,300 digits ``repr(int)`` itself raises)."""

    def __repr__(self) -> str:
        return f"Big(<{self.bit_length()} bits, sign {1 if self >= 0 else -1}>)"


def _digits(count: int) -> Big:
    """An int of ``abs(count)`` decimal digits, negative for a negative count."""
    return Big((1 if count > 0 else -1) * 10 ** (abs(count) - 1))


_odd_numbers = st.sampled_from([2**53, 2**63, -(2**64), 10**37, 10**38, 10**39, -(10**40), 1e-130, 1e126, 1e300]) | (
    st.sampled_from([4299, 4300, 4301, -5000]).map(_digits)
)
_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 0.1, 1.0, 5e-324, 6.08e-139, 1e-131, 9.99e125, 1e126, 1.7e308, 6.870921187064813e16, 2.0**53]
)
_texts = st.text(max_size=8) | st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2
)
_not_json = st.sampled_from(
    [Decimal("1.5"), b"bytes", bytearray(b"x"), datetime.date(2026, 1, 1), object(), Colour.RED, Tag("t"), ...]
)
_leaves = st.none() | st.booleans() | st.integers() | _odd_numbers | _floats | _texts | _not_json
python_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.frozensets(st.integers(), max_size=2)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        | st.dictionaries(st.integers(), inner, min_size=1, max_size=2)
        | st.dictionaries(st.text(max_size=4), inner, max_size=2).map(types.MappingProxyType)
    ),
    max_leaves=6,
)


def same(stored: Any, returned: Any) -> bool:
    """Equal, type included; numbers by value (DynamoDB numbers carry no int/float distinction, so a
    plaintext 1.0 may read back as 1), and a str/int subclass as its base type."""
    if stored is None or isinstance(stored, bool):
        return returned is stored
    if isinstance(stored, int | float):
        return isinstance(returned, int | float) and not isinstance(returned, bool) and returned == stored
    if isinstance(stored, str):
        return isinstance(returned, str) and returned == stored
    if isinstance(stored, list):
        return isinstance(returned, list) and len(returned) == len(stored) and all(map(same, stored, returned))
    if isinstance(stored, dict):
        return (
            isinstance(returned, dict)
            and returned.keys() == stored.keys()
            and all(same(v, returned[k]) for k, v in stored.items())
        )
    return False


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(value=python_values, field=st.sampled_from([SENSITIVE_FIELD, PLAIN_FIELD]))
def test_every_python_value_is_stored_as_it_went_in_or_refused_naming_the_field(
    aws: TwoRegions, value: Any, field: str
) -> None:
    from record_crypto import RecordError

    records = aws.shared_service(PRIMARY)
    record = {"name": "Ada", field: value}
    try:
        written = records.put("value-contract", record)
    except RecordError as error:
        assert error.type != "Internal", (field, value, error)
        assert 400 <= error.status < 500, (field, value, error)
        assert f"'{field}'" in str(error), (field, value, str(error))
        return
    read = records.get("value-contract", min_version=written.version)
    assert same(record, read.record), (record, read.record)


def test_a_value_that_contains_itself_is_refused_naming_the_field(aws: TwoRegions) -> None:
    from record_crypto import RecordError

    loop: list[Any] = []
    loop.append(loop)
    for field in (SENSITIVE_FIELD, PLAIN_FIELD):
        with pytest.raises(RecordError) as refused:
            aws.shared_service(PRIMARY).put("loop", {field: loop})
        assert refused.value.type == "InvalidEvent" and f"'{field}'" in str(refused.value)
