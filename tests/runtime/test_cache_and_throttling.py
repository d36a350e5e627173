"""The bounded data-key cache cuts KMS calls to about 1/100 and honours its bounds; KMS
throttling is retried with backoff, then reported as a retryable error."""

from __future__ import annotations

import time

import pytest
from record_crypto.records import seal, split_record, to_attribute_values

from tests.runtime.conftest import PRIMARY, REPLICA, SENSITIVE, TwoRegions, assert_no_plaintext, sample_record


def _write_many(aws: TwoRegions, count: int, **overrides: str) -> None:
    writer = aws.service(PRIMARY, **overrides)
    for i in range(count):
        assert writer.write({"id": f"p-{i}", "record": sample_record(str(i))})["ok"]


def test_without_cache_every_record_costs_one_kms_call_per_side(aws: TwoRegions) -> None:
    _write_many(aws, 20)
    assert len(aws.recorder.kms("GenerateDataKey")) == 20
    reader = aws.service(REPLICA)
    for i in range(20):
        aws.replicate(f"p-{i}")
        assert reader.read({"id": f"p-{i}"})["ok"]
    assert len(aws.recorder.kms("Decrypt")) == 20


def test_with_cache_steady_state_kms_calls_fall_to_one_per_hundred_or_less(aws: TwoRegions) -> None:
    _write_many(aws, 200, DATA_KEY_CACHE="on")
    generate = len(aws.recorder.kms("GenerateDataKey"))
    reader = aws.service(REPLICA, DATA_KEY_CACHE="on")
    for i in range(200):
        aws.replicate(f"p-{i}")
        assert reader.read({"id": f"p-{i}"})["ok"]
    decrypt = len(aws.recorder.kms("Decrypt"))
    assert generate / 200 <= 1 / 100 and decrypt / 200 <= 1 / 100, (generate, decrypt)


def test_cache_message_bound_is_honoured(aws: TwoRegions) -> None:
    _write_many(aws, 50, DATA_KEY_CACHE="on", DATA_KEY_CACHE_MAX_MESSAGES="10")
    assert len(aws.recorder.kms("GenerateDataKey")) == 5


def test_cache_byte_bound_is_honoured(aws: TwoRegions) -> None:
    # A data key serves messages while the bytes it has encrypted stay within the bound;
    # the payloads here are ~150 bytes, so a 1000-byte bound forces several fresh keys.
    bound, count = 1000, 21
    sizes = [_sealed_size(f"p-{i}", sample_record(str(i))) for i in range(count)]
    expected, used = 0, None
    for size in sizes:
        if used is not None and used + size <= bound:
            used += size
        else:
            expected, used = expected + 1, size
    assert expected >= 3, "the bound must actually bite in this test"

    _write_many(aws, count, DATA_KEY_CACHE="on", DATA_KEY_CACHE_MAX_BYTES=str(bound))
    assert len(aws.recorder.kms("GenerateDataKey")) == expected


def _sealed_size(item_id: str, record: dict[str, object]) -> int:
    """The size of what the writer encrypts for this record (timestamps have a fixed width)."""
    plain, secret, _ = split_record(record, SENSITIVE)
    signed = {
        **to_attribute_values(plain),
        **{name: {"S": "x"} for name in ("id", "_schema", "_version", "_writer_region", "_written_at")},
    }
    return len(
        seal(
            item_id=item_id,
            sensitive_fields=secret,
            signed_attributes=signed,
            version=1,
            writer_region=PRIMARY,
            written_at="2026-01-01T00:00:00.000+00:00",
        )
    )


def test_cache_age_bound_is_honoured(aws: TwoRegions) -> None:
    writer = aws.service(PRIMARY, DATA_KEY_CACHE="on", DATA_KEY_CACHE_MAX_AGE_SECONDS="1")
    assert writer.write({"id": "a", "record": sample_record()})["ok"]
    assert writer.write({"id": "b", "record": sample_record()})["ok"]
    assert len(aws.recorder.kms("GenerateDataKey")) == 1
    time.sleep(1.1)
    assert writer.write({"id": "c", "record": sample_record()})["ok"]
    assert len(aws.recorder.kms("GenerateDataKey")) == 2


def test_kms_throttling_is_retried_then_succeeds(aws: TwoRegions) -> None:
    writer = aws.service(PRIMARY, faults={"kms.GenerateDataKey": ["ThrottlingException", "ThrottlingException"]})
    result = writer.write({"id": "p", "record": sample_record()})
    assert result["ok"] is True, result
    assert len(aws.recorder.kms("GenerateDataKey")) == 1, "one API call, retried inside botocore"


@pytest.mark.parametrize(("operation", "side"), [("GenerateDataKey", "write"), ("Decrypt", "read")])
def test_persistent_kms_throttling_is_a_retryable_error(aws: TwoRegions, operation: str, side: str) -> None:
    record = sample_record()
    if side == "read":
        assert aws.service(PRIMARY).write({"id": "p", "record": record})["ok"]
        aws.replicate("p")
    region = PRIMARY if side == "write" else REPLICA
    faults = {f"kms.{operation}": ["ThrottlingException"] * 4}
    service = aws.service(region, faults=faults)
    attempts_left = faults[f"kms.{operation}"]
    aws.recorder.clear()

    result = service.write({"id": "p2", "record": record}) if side == "write" else service.read({"id": "p"})

    assert result["error"] == {**result["error"], "type": "KmsThrottled", "status": 503, "retryable": True}, result
    assert attempts_left == [], "all 4 attempts were made (botocore standard retry mode)"
    assert_no_plaintext(result, record)
    if side == "write":
        assert aws.raw_item(PRIMARY, "p2") is None, "nothing written when encryption failed"


def test_kms_access_denied_is_reported_as_such(aws: TwoRegions) -> None:
    writer = aws.service(PRIMARY, faults={"kms.GenerateDataKey": ["AccessDeniedException"]})
    result = writer.write({"id": "p", "record": sample_record()})
    assert result["error"]["type"] == "AccessDenied" and result["error"]["status"] == 403, result


@pytest.mark.parametrize("code", ["DisabledException", "KMSInvalidStateException"])
@pytest.mark.parametrize("operation", ["kms.GenerateDataKey", "kms.Decrypt"])
def test_a_disabled_or_pending_deletion_key_is_key_disabled(aws: TwoRegions, code: str, operation: str) -> None:
    if operation == "kms.Decrypt":
        assert "error" not in aws.service(PRIMARY).write({"id": "p", "record": sample_record()})
    service = aws.service(PRIMARY, faults={operation: [code] * 4})
    result = (
        service.read({"id": "p"})
        if operation == "kms.Decrypt"
        else service.write({"id": "p", "record": sample_record()})
    )
    error = result["error"]
    assert (error["type"], error["status"], error["retryable"]) == ("KeyDisabled", 403, False), result
    assert "disabled or scheduled for deletion" in error["message"], result


def test_table_throttling_is_a_retryable_error(aws: TwoRegions) -> None:
    faults = {"dynamodb.PutItem": ["ProvisionedThroughputExceededException"] * 4}
    result = aws.service(PRIMARY, faults=faults).write({"id": "p", "record": sample_record()})
    assert result["error"]["type"] == "TableThrottled" and result["error"]["retryable"] is True, result
    assert faults["dynamodb.PutItem"] == [], "all 4 attempts were made"


@pytest.mark.parametrize(
    ("fault", "side"),
    [
        ("dynamodb.GetItem", "write"),  # the writer's version read: first call of a write
        ("kms.GenerateDataKey", "write"),
        ("dynamodb.GetItem", "read"),
        ("kms.Decrypt", "read"),
    ],
)
def test_a_region_that_does_not_answer_is_a_retryable_unavailable_error(aws: TwoRegions, fault: str, side: str) -> None:
    """A regional outage (KMS or DynamoDB answering 5xx codes): the caller gets Unavailable (503,
    retryable, "retry later or in another region"), nothing is stored, no plaintext leaks."""
    record = sample_record()
    assert aws.service(PRIMARY).write({"id": "p", "record": record})["ok"]
    code = "KMSInternalException" if fault.startswith("kms.") else "ServiceUnavailable"
    service = aws.service(PRIMARY, faults={fault: [code] * 4})
    result = service.write({"id": "p2", "record": record}) if side == "write" else service.read({"id": "p"})
    error = result["error"]
    assert (error["type"], error["status"], error["retryable"]) == ("Unavailable", 503, True), result
    assert f"in {PRIMARY} did not answer" in error["message"] and "another region" in error["message"]
    assert_no_plaintext(result, record)
    assert aws.raw_item(PRIMARY, "p2") is None, "nothing written"
