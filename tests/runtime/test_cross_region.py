"""Write in the primary region, replicate by copy, read and decrypt in the replica region."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import PRIMARY, REPLICA, SENSITIVE, TwoRegions, assert_no_plaintext, sample_record


@pytest.mark.parametrize("cache", ["off", "on"])
@pytest.mark.parametrize("suite", ["signing", "committing-unsigned"])
def test_record_written_in_one_region_is_decrypted_in_the_other(aws: TwoRegions, cache: str, suite: str) -> None:
    writer = aws.service(PRIMARY, DATA_KEY_CACHE=cache, ALGORITHM_SUITE=suite)
    reader = aws.service(REPLICA, DATA_KEY_CACHE=cache, ALGORITHM_SUITE=suite)
    record = sample_record()

    written = writer.write({"id": "person-1", "record": record})
    assert written["ok"] is True, written
    assert written["encrypted_fields"] == sorted(SENSITIVE)
    aws.replicate("person-1")
    read = reader.read({"id": "person-1"})

    assert read["ok"] is True, read
    assert read["record"] == record
    assert (read["written_region"], read["read_region"]) == (PRIMARY, REPLICA)


def test_kms_is_called_only_in_the_callers_region_with_its_local_key(aws: TwoRegions) -> None:
    writer, reader = aws.service(PRIMARY), aws.service(REPLICA)
    writer.write({"id": "person-1", "record": sample_record()})
    writes = aws.recorder.kms()
    aws.recorder.clear()
    aws.replicate("person-1")
    reader.read({"id": "person-1"})
    reads = aws.recorder.kms()

    assert [(c.operation, c.region, c.key_id) for c in writes] == [("GenerateDataKey", PRIMARY, aws.primary_arn)]
    assert [(c.operation, c.region, c.key_id) for c in reads] == [("Decrypt", REPLICA, aws.replica_arn)]
    assert aws.primary_arn.split("/")[1] == aws.replica_arn.split("/")[1], "replica shares the key id"


def test_table_holds_only_ciphertext_for_sensitive_fields(aws: TwoRegions) -> None:
    record = sample_record()
    aws.service(PRIMARY).write({"id": "person-1", "record": record})
    item = aws.raw_item(PRIMARY, "person-1")
    assert item is not None

    assert_no_plaintext(item, record)
    binary = [k for k, v in item.items() if "B" in v]
    assert binary == ["_ciphertext"]
    assert item["name"] == {"S": "Ada a"} and item["tier"] == {"N": "3"}, "non-sensitive fields stay queryable"
    assert item["_writer_region"] == {"S": PRIMARY}
    assert not set(SENSITIVE) & set(item), "no sensitive attribute in plaintext"


def test_reader_before_replication_gets_a_retryable_not_found_and_no_kms_call(aws: TwoRegions) -> None:
    aws.service(PRIMARY).write({"id": "person-1", "record": sample_record()})
    aws.recorder.clear()
    result = aws.service(REPLICA).read({"id": "person-1"})

    assert result["ok"] is False
    assert result["error"]["type"] == "NotFound" and result["error"]["status"] == 404
    assert result["error"]["retryable"] is True
    assert aws.recorder.kms() == []


def test_a_record_without_sensitive_fields_is_still_sealed_to_its_item(aws: TwoRegions) -> None:
    writer, reader = aws.service(PRIMARY), aws.service(REPLICA)
    assert writer.write({"id": "plain-1", "record": {"name": "only public"}})["ok"]
    aws.replicate("plain-1")
    assert reader.read({"id": "plain-1"})["record"] == {"name": "only public"}


def test_sensitive_fields_are_configuration(aws: TwoRegions) -> None:
    record = sample_record()
    aws.service(PRIMARY, SENSITIVE_FIELDS="name").write({"id": "person-1", "record": record})
    item = aws.raw_item(PRIMARY, "person-1")
    assert item is not None
    assert "name" not in item and item["ssn"] == {"S": record["ssn"]}
