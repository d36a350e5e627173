"""The functions' metrics (CloudWatch embedded metric format on stdout): what each operation counts,
and that a metric line never carries an item id or a record value."""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from record_crypto.observability import (
    DATA_KEY_CACHE_HITS,
    KMS_CALLS,
    KMS_THROTTLES,
    NAMESPACE,
    OPERATION_READ,
    RECORDS_READ,
    RECORDS_WRITTEN,
    REFUSALS,
    SECURITY_ERROR_TYPES,
    SECURITY_REFUSALS,
    EmfMetrics,
    OperationCounts,
    emf_document,
)
from record_crypto.service import RecordService
from record_crypto.settings import Settings

from offline.emulator.emf import Datum, EmfError, extract, parse_document
from tests.runtime.conftest import PRIMARY, REPLICA, TABLE, TwoRegions, recording_session, sample_record, secrets_of


def _values(data: list[Datum]) -> dict[str, float]:
    """Metric name -> value, for the data points of ONE operation (one line)."""
    out: dict[str, float] = {}
    for d in data:
        assert d.namespace == NAMESPACE, d
        out[d.name] = d.value
    return out


@pytest.fixture
def handlers(aws: TwoRegions, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Load writer.py / reader.py as Lambda does (cold start from the environment); each call
    returns the handler's result and the EMF data points it printed."""

    def load(module: str, region: str, **env: str) -> Any:
        for name, value in aws.env(region, **env).items():
            monkeypatch.setenv(name, value)
        sys.modules.pop(module, None)
        handler = importlib.import_module(module).handler

        def call(event: dict[str, Any]) -> tuple[dict[str, Any], list[Datum], str]:
            capsys.readouterr()
            result = handler(event, None)
            out = capsys.readouterr().out
            return result, extract(out.splitlines()), out

        return call

    yield load
    sys.modules.pop("writer", None)
    sys.modules.pop("reader", None)


def test_handlers_count_writes_reads_kms_calls_and_refusals(aws: TwoRegions, handlers: Any) -> None:
    record = sample_record("m1")
    writer, reader = handlers("writer", PRIMARY), handlers("reader", REPLICA)
    result, data, out = writer({"id": "person-m1", "record": record})
    assert result["ok"], result
    assert _values(data) == {
        RECORDS_WRITTEN: 1,
        RECORDS_READ: 0,
        SECURITY_REFUSALS: 0,
        KMS_CALLS: 1,
        KMS_THROTTLES: 0,
        DATA_KEY_CACHE_HITS: 0,
    }
    assert {d.dimension_map()["Operation"] for d in data} == {"write"}
    aws.replicate("person-m1")
    result, data, out2 = reader({"id": "person-m1"})
    assert result["ok"] and _values(data)[RECORDS_READ] == 1 and _values(data)[KMS_CALLS] == 1

    item = aws.raw_item(REPLICA, "person-m1")
    assert item is not None
    item["name"] = {"S": "Mallory"}  # a changed plaintext attribute
    aws.put_raw_item(REPLICA, item)
    result, data, out3 = reader({"id": "person-m1"})
    assert result["error"]["type"] == "TamperedRecord", result
    refusals = [d for d in data if d.name == REFUSALS]
    assert [(d.value, d.dimension_map()) for d in refusals] == [
        (1, {"Table": TABLE, "Operation": "read", "ErrorType": "TamperedRecord"})
    ]
    assert _values([d for d in data if d.name != REFUSALS])[SECURITY_REFUSALS] == 1
    for text in (out, out2, out3):
        assert "person-m1" not in text  # no item id
        assert not [s for s in secrets_of(record) if s in text]  # no record value


def test_a_refusal_that_is_not_a_security_signal_is_counted_by_type_only(aws: TwoRegions, handlers: Any) -> None:
    reader = handlers("reader", REPLICA)
    result, data, _ = reader({"id": "not-there"})
    assert result["error"]["type"] == "NotFound"
    assert [d.dimension_map().get("ErrorType") for d in data if d.name == REFUSALS] == ["NotFound"]
    assert _values([d for d in data if d.name != REFUSALS])[SECURITY_REFUSALS] == 0
    assert "NotFound" not in SECURITY_ERROR_TYPES
    assert set(SECURITY_ERROR_TYPES) == {
        "ContextMismatch",
        "TamperedCiphertext",
        "TamperedRecord",
        "TenantMismatch",
        "UnexpectedAlgorithm",
        "WrongKey",
    }


def _service(aws: TwoRegions, region: str, sink: io.StringIO, faults: Any = None, **env: str) -> RecordService:
    settings = Settings.from_env(aws.env(region, **env))
    return RecordService(
        settings, botocore_session=recording_session(aws.recorder, faults), metrics=EmfMetrics(TABLE, sink)
    )


def test_data_key_cache_hits_are_operations_without_a_kms_call(aws: TwoRegions) -> None:
    sink = io.StringIO()
    writer = _service(aws, PRIMARY, sink, DATA_KEY_CACHE="on")
    for i in range(3):
        assert writer.write({"id": f"c-{i}", "record": sample_record(str(i))})["ok"]
    lines = sink.getvalue().splitlines()
    per_write = [_values(extract([line])) for line in lines]
    assert [(v[KMS_CALLS], v[DATA_KEY_CACHE_HITS]) for v in per_write] == [(1, 0), (0, 1), (0, 1)]
    assert len(aws.recorder.kms("GenerateDataKey")) == 1


def test_kms_throttling_is_counted_even_when_a_retry_succeeds(aws: TwoRegions) -> None:
    sink = io.StringIO()
    faults = {"kms.GenerateDataKey": ["ThrottlingException"]}
    writer = _service(aws, PRIMARY, sink, faults)
    assert writer.write({"id": "t-1", "record": sample_record("t")})["ok"]
    assert _values(extract(sink.getvalue().splitlines()))[KMS_THROTTLES] == 1

    sink = io.StringIO()
    faults = {"kms.GenerateDataKey": ["ThrottlingException"] * 4}  # every attempt
    writer = _service(aws, PRIMARY, sink, faults)
    result = writer.write({"id": "t-2", "record": sample_record("t")})
    assert result["error"]["type"] == "KmsThrottled", result
    data = extract(sink.getvalue().splitlines())
    assert _values([d for d in data if d.name != REFUSALS])[KMS_THROTTLES] == 4
    assert [d.dimension_map()["ErrorType"] for d in data if d.name == REFUSALS] == ["KmsThrottled"]


def test_the_library_emits_no_metrics_unless_asked(aws: TwoRegions, capsys: pytest.CaptureFixture[str]) -> None:
    records = RecordService(Settings.from_env(aws.env(PRIMARY)))
    records.put("lib-1", sample_record("lib"))
    assert capsys.readouterr().out == ""


def test_a_metric_line_is_valid_emf_and_refuses_free_form_values() -> None:
    document = emf_document(TABLE, OperationCounts("read", ok=False, error_type="WrongKey"), timestamp_ms=1)
    data = parse_document(document)
    assert {d.name for d in data} == {
        RECORDS_WRITTEN,
        RECORDS_READ,
        SECURITY_REFUSALS,
        KMS_CALLS,
        KMS_THROTTLES,
        DATA_KEY_CACHE_HITS,
        REFUSALS,
    }
    with pytest.raises(ValueError, match="unknown error type"):
        emf_document(TABLE, OperationCounts("read", ok=False, error_type="ssn 078-05-1120"))
    with pytest.raises(ValueError, match="operation must be one of"):
        emf_document(TABLE, OperationCounts("person-1", ok=True))
    broken = {**document}
    del broken["Table"]
    with pytest.raises(EmfError, match="dimension 'Table'"):
        parse_document(broken)


def test_every_error_a_function_can_answer_is_a_known_metric_type() -> None:
    """A refusal whose type the metrics do not know crashed the function (an erased tenant's
    KeyDisabled did): every RecordError subclass is in ERROR_TYPES and makes a metric line."""
    from record_crypto import errors

    def subclasses(cls: type) -> set[type]:
        return {sub for direct in cls.__subclasses__() for sub in (direct, *subclasses(direct))}

    defined = {cls.type for cls in subclasses(errors.RecordError) if cls.__module__ == errors.__name__}
    assert defined == set(errors.ERROR_TYPES), defined ^ set(errors.ERROR_TYPES)
    for name in defined:
        parse_document(emf_document(TABLE, OperationCounts(operation=OPERATION_READ, ok=False, error_type=name)))
