"""Malformed and oversized events get a structured 4xx error, no AWS call, and no plaintext in
the result or the logs; arbitrary events never raise (hypothesis)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from record_crypto.errors import ERROR_TYPES

from tests.runtime.conftest import PRIMARY, REPLICA, TwoRegions, assert_no_plaintext

SECRET = "SECRET-ssn-999-99-9999"


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


BAD_WRITES: list[tuple[str, Any]] = [
    ("not an object", "just a string"),
    ("list", [1, 2]),
    ("null", None),
    ("missing id", {"record": {"ssn": SECRET}}),
    ("empty id", {"id": "", "record": {"ssn": SECRET}}),
    ("id not a string", {"id": 7, "record": {"ssn": SECRET}}),
    ("id with spaces", {"id": "a b", "record": {"ssn": SECRET}}),
    ("id too long", {"id": "a" * 256, "record": {"ssn": SECRET}}),
    ("missing record", {"id": "x"}),
    ("record not an object", {"id": "x", "record": SECRET}),
    ("empty record", {"id": "x", "record": {}}),
    ("unknown key", {"id": "x", "record": {"ssn": SECRET}, "extra": 1}),
    ("reserved field name", {"id": "x", "record": {"_ciphertext": SECRET}}),
    ("field named id", {"id": "x", "record": {"id": SECRET}}),
    ("bad field name", {"id": "x", "record": {"bad name": SECRET}}),
    ("non-finite number", {"id": "x", "record": {"score": float("nan"), "ssn": SECRET}}),
    ("non-JSON value", {"id": "x", "record": {"blob": b"bytes", "ssn": SECRET}}),
    ("number too precise for DynamoDB", {"id": "x", "record": {"n": 10**40 + 1, "ssn": SECRET}}),
    ("too deep", {"id": "x", "record": {"deep": _deep(20), "ssn": SECRET}}),
    ("too many fields", {"id": "x", "record": {f"f{i}": i for i in range(101)}}),
    ("id with a trailing newline", {"id": "p1\n", "record": {"ssn": SECRET}}),
    ("lone surrogate in a value", {"id": "x", "record": {"name": "\ud800", "ssn": SECRET}}),
    ("lone surrogate in a sensitive value", {"id": "x", "record": {"ssn": SECRET + "\udfff"}}),
    ("lone surrogate in a nested key", {"id": "x", "record": {"meta": {"\ud83d": 1}, "ssn": SECRET}}),
    ("field name with a trailing newline", {"id": "x", "record": {"ssn\n": SECRET}}),
    ("field name with a dash", {"id": "x", "record": {"card-number": SECRET}}),
    ("negative expected_version", {"id": "x", "record": {"ssn": SECRET}, "expected_version": -1}),
]


@pytest.mark.parametrize(("case", "event"), BAD_WRITES, ids=[c for c, _ in BAD_WRITES])
def test_malformed_write_gets_invalid_event_and_no_aws_call(
    aws: TwoRegions, caplog: pytest.LogCaptureFixture, case: str, event: Any
) -> None:
    writer = aws.service(PRIMARY)
    aws.recorder.clear()
    with caplog.at_level(logging.DEBUG):
        result = writer.write(event)
    assert result["ok"] is False
    assert result["error"]["type"] == "InvalidEvent" and result["error"]["status"] == 400, result
    assert result["error"]["retryable"] is False
    assert aws.recorder.calls == [], f"{case}: AWS called for an invalid event"
    assert SECRET not in str(result) and SECRET not in caplog.text


def test_oversized_record_gets_413_and_no_aws_call(aws: TwoRegions) -> None:
    writer = aws.service(PRIMARY, MAX_RECORD_BYTES="1024")
    aws.recorder.clear()
    result = writer.write({"id": "big", "record": {"ssn": SECRET, "notes": "x" * 1100}})
    assert result["error"]["type"] == "RecordTooLarge" and result["error"]["status"] == 413, result
    assert aws.recorder.calls == []
    assert SECRET not in str(result)


@pytest.mark.parametrize(
    "event",
    [None, {}, {"id": ""}, {"id": "x", "record": {}}, {"id": ["x"]}, {"id": "p1\n"}, {"id": "x", "min_version": 0}],
)
def test_malformed_read_gets_invalid_event_and_no_aws_call(aws: TwoRegions, event: Any) -> None:
    reader = aws.service(REPLICA)
    aws.recorder.clear()
    result = reader.read(event)
    assert result["error"]["type"] == "InvalidEvent" and result["error"]["status"] == 400, result
    assert aws.recorder.calls == []


def test_success_logs_are_structured_and_hold_no_plaintext(aws: TwoRegions, caplog: pytest.LogCaptureFixture) -> None:
    record = {"name": "n", "ssn": SECRET, "dob": "SECRET-dob-2000-01-01"}
    with caplog.at_level(logging.DEBUG):
        assert aws.service(PRIMARY).write({"id": "p1", "record": record})["ok"]
        aws.replicate("p1")
        assert aws.service(REPLICA).read({"id": "p1"})["ok"]
    ours = [r for r in caplog.records if r.name == "mrk_toolkit"]
    assert [r.mrk_toolkit["operation"] for r in ours] == ["write", "read"]  # type: ignore[attr-defined]
    assert all(r.mrk_toolkit["outcome"] == "ok" for r in ours)  # type: ignore[attr-defined]
    assert_no_plaintext(caplog.text, record | {"diagnosis": None})
    assert SECRET not in caplog.text


# Strings include lone surrogates (JSON can carry them; UTF-8 cannot): each must be a 400.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.text(st.characters(codec=None, categories=["Cs", "Ll"]), max_size=4)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(["name", "ssn", "dob", "diagnosis", "tier", "_x", "id", "bad name", "x" * 70]) | st.text(
    max_size=10
)
events = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.text(max_size=12), st.integers(), st.just("person-1"), st.just("person-1\n")),
            "record": st.dictionaries(field_names, json_values, max_size=5),
        },
        optional={"extra": json_values},
    ),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(event=events)
def test_arbitrary_events_never_raise_and_never_leak(aws: TwoRegions, event: Any) -> None:
    writer = aws.shared_service(PRIMARY)
    marker = "SECRET-hypothesis-7f3a"
    if isinstance(event, dict) and isinstance(event.get("record"), dict):
        event["record"]["ssn"] = marker
    result = writer.write(event)
    assert isinstance(result, dict) and isinstance(result.get("ok"), bool)
    if not result["ok"]:
        assert result["error"]["type"] in ERROR_TYPES
        assert result["error"]["type"] != "Internal", result
        assert 400 <= result["error"]["status"] < 500
    assert marker not in repr(result)
    read = aws.shared_service(REPLICA).read({"id": event.get("id")} if isinstance(event, dict) else event)
    assert isinstance(read, dict) and read["ok"] in (True, False)


@pytest.mark.parametrize(
    ("event", "needles"),
    [
        ({"id": "x", "record": {"ssn": SECRET}, "extra": SECRET}, ["unknown key(s) 'extra'", "allowed keys"]),
        (
            {"id": "x", "record": {"ssn": SECRET}, "expectedVersion": 1},
            ["'expectedVersion'", "did you mean 'expected_version'"],
        ),
        ({"record": {"ssn": SECRET}}, ["'id' is missing"]),
        ({"id": "x"}, ["'record' is missing"]),
        ({}, ["'id' and 'record' are missing"]),
        ({"id": "x", "record": {"ssn": SECRET}, "k" * 500: 1}, ["'" + "k" * 64 + "...'"]),
    ],
)
def test_a_write_event_names_its_unknown_and_missing_keys_never_a_value(
    aws: TwoRegions, event: dict[str, Any], needles: list[str]
) -> None:
    message = aws.service(PRIMARY).write(event)["error"]["message"]
    assert all(needle in message for needle in needles), message
    assert SECRET not in message and "k" * 65 not in message


def test_a_read_event_names_its_unknown_and_missing_keys(aws: TwoRegions) -> None:
    reader = aws.service(REPLICA)
    assert "unknown key(s) 'minVersion'" in reader.read({"id": "x", "minVersion": 1})["error"]["message"]
    assert "'id' is missing" in reader.read({"min_version": 1})["error"]["message"]
