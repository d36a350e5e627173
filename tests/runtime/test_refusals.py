"""Ciphertexts that were altered, moved, made with another key or suite are refused, and no
plaintext is released."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header
from record_crypto.context import expected_context
from record_crypto.envelope import RecordCipher
from record_crypto.errors import ContextMismatch, WrongKey

from tests.runtime.conftest import PRIMARY, REPLICA, TABLE, TwoRegions, assert_no_plaintext, sample_record

REFUSALS = {"TamperedCiphertext", "ContextMismatch", "WrongKey", "UnexpectedAlgorithm"}


def _written(aws: TwoRegions, item_id: str = "person-1", **overrides: str) -> tuple[dict[str, Any], dict[str, Any]]:
    record = sample_record(item_id)
    assert aws.service(PRIMARY, **overrides).write({"id": item_id, "record": record})["ok"]
    aws.replicate(item_id)
    item = aws.raw_item(REPLICA, item_id)
    assert item is not None
    return record, item


@pytest.mark.parametrize("suite", ["signing", "committing-unsigned"])
def test_a_bit_flip_anywhere_in_the_ciphertext_is_refused(aws: TwoRegions, suite: str) -> None:
    record, item = _written(aws, ALGORITHM_SUITE=suite)
    reader = aws.service(REPLICA, ALGORITHM_SUITE=suite)
    blob = item["_ciphertext"]["B"]
    # moto's (made-up) KMS ciphertext blob starts with the key id in clear; a flip there makes
    # moto answer AccessDenied ("key does not exist") where real KMS answers
    # InvalidCiphertextException. Those 40 positions may be refused as AccessDenied.
    header, _ = deserialize_header(io.BytesIO(blob))
    edk = next(iter(header.encrypted_data_keys)).encrypted_data_key
    moto_key_id = range(blob.find(edk), blob.find(edk) + 40)
    outcomes: dict[str, int] = {}
    for position in range(len(blob)):
        flipped = bytearray(blob)
        flipped[position] ^= 1 << (position % 8)
        aws.put_raw_item(REPLICA, {**item, "_ciphertext": {"B": bytes(flipped)}})
        result = reader.read({"id": "person-1"})
        assert result["ok"] is False, f"flip at byte {position} was accepted"
        allowed = REFUSALS | ({"AccessDenied"} if position in moto_key_id else set())
        assert result["error"]["type"] in allowed, (position, result)
        assert_no_plaintext(result, record)
        outcomes[result["error"]["type"]] = outcomes.get(result["error"]["type"], 0) + 1
    assert outcomes.get("TamperedCiphertext", 0) > len(blob) // 2, outcomes
    aws.put_raw_item(REPLICA, item)
    assert reader.read({"id": "person-1"})["ok"], "the untouched ciphertext still decrypts"


@pytest.mark.parametrize("cache", ["off", "on"])
def test_ciphertext_copied_onto_another_item_is_refused(aws: TwoRegions, cache: str) -> None:
    record, source = _written(aws, "person-1", DATA_KEY_CACHE=cache)
    _, target = _written(aws, "person-2", DATA_KEY_CACHE=cache)
    aws.put_raw_item(REPLICA, {**target, "_ciphertext": source["_ciphertext"]})

    result = aws.service(REPLICA, DATA_KEY_CACHE=cache).read({"id": "person-2"})

    assert result["error"]["type"] == "ContextMismatch", result
    assert_no_plaintext(result, record)


def test_ciphertext_moved_into_another_table_is_refused_before_any_kms_call(aws: TwoRegions) -> None:
    record, item = _written(aws)
    boto3.client("dynamodb", REPLICA).create_table(
        TableName="other-table",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("dynamodb", REPLICA).put_item(TableName="other-table", Item=item)
    reader = aws.service(REPLICA, RECORDS_TABLE_NAME="other-table")
    aws.recorder.clear()

    result = reader.read({"id": "person-1"})

    assert result["error"]["type"] == "ContextMismatch", result
    assert "table" in result["error"]["message"]
    assert aws.recorder.kms() == []
    assert_no_plaintext(result, record)


def test_ciphertext_made_with_another_key_is_refused_as_wrong_key(aws: TwoRegions) -> None:
    other = boto3.client("kms", PRIMARY).create_key(MultiRegion=True)["KeyMetadata"]
    record = sample_record()
    assert aws.service(PRIMARY, RECORDS_MRK_ARN=other["Arn"]).write({"id": "person-1", "record": record})["ok"]
    aws.replicate("person-1")
    aws.recorder.clear()

    result = aws.service(REPLICA).read({"id": "person-1"})

    assert result["error"]["type"] == "WrongKey" and result["error"]["status"] == 403, result
    assert aws.recorder.kms() == [], "refused from the header, before any KMS call"
    assert_no_plaintext(result, record)


def test_a_signing_reader_refuses_unsigned_messages(aws: TwoRegions) -> None:
    record, _ = _written(aws, ALGORITHM_SUITE="committing-unsigned")
    result = aws.service(REPLICA, ALGORITHM_SUITE="signing").read({"id": "person-1"})
    assert result["error"]["type"] == "UnexpectedAlgorithm", result
    assert_no_plaintext(result, record)
    # The opposite direction is allowed: an unsigned-suite reader can read signed records.
    _written(aws, "person-2", ALGORITHM_SUITE="signing")
    assert aws.service(REPLICA, ALGORITHM_SUITE="committing-unsigned").read({"id": "person-2"})["ok"]


def test_an_item_without_ciphertext_is_refused(aws: TwoRegions) -> None:
    _record, item = _written(aws)
    aws.put_raw_item(REPLICA, {k: v for k, v in item.items() if k != "_ciphertext"})
    result = aws.service(REPLICA).read({"id": "person-1"})
    assert result["error"]["type"] == "TamperedCiphertext", result


def test_cipher_refuses_reserved_context_keys_and_checks_context_on_decrypt(aws: TwoRegions) -> None:
    cipher = RecordCipher(key_arn=aws.primary_arn)
    with pytest.raises(ValueError, match="aws-crypto-"):
        cipher.encrypt(b"{}", {"aws-crypto-public-key": "forged"})
    blob = cipher.encrypt(b"secret", expected_context(table=TABLE, item_id="a"))

    def expect_item_b(ctx: Any) -> None:
        if ctx.get("item") != "b":
            raise ContextMismatch("item differs")

    with pytest.raises(ContextMismatch):
        cipher.decrypt(blob, expect_item_b)
    assert cipher.decrypt(blob, lambda ctx: None) == b"secret"
    other = RecordCipher(key_arn=aws.primary_arn.rsplit("/", 1)[0] + "/mrk-00000000000000000000000000000000")
    with pytest.raises(WrongKey):
        other.decrypt(blob, lambda ctx: None)


def _foreign_message(item: dict[str, Any], *, key_ids: list[str], **client_options: Any) -> bytes:
    """A message made outside the toolkit's settings, bound to the right table and item."""
    import aws_encryption_sdk
    from aws_encryption_sdk.key_providers.kms import StrictAwsKmsMasterKeyProvider

    client = aws_encryption_sdk.EncryptionSDKClient(**client_options)
    provider = StrictAwsKmsMasterKeyProvider(key_ids=key_ids)
    context = expected_context(table=TABLE, item_id=item["id"]["S"])
    blob, _ = client.encrypt(
        source=b'{"fields":{},"id":"person-1","schema":"1"}', key_provider=provider, encryption_context=context
    )
    return blob


def test_a_signing_reader_refuses_unsigned_messages_before_any_kms_call(aws: TwoRegions) -> None:
    record, _ = _written(aws, ALGORITHM_SUITE="committing-unsigned")
    aws.recorder.clear()
    result = aws.service(REPLICA, ALGORITHM_SUITE="signing").read({"id": "person-1"})
    assert result["error"]["type"] == "UnexpectedAlgorithm", result
    assert aws.recorder.kms() == []
    assert_no_plaintext(result, record)


def test_a_message_with_more_than_one_encrypted_data_key_is_refused_before_any_kms_call(aws: TwoRegions) -> None:
    _, item = _written(aws)
    second = boto3.client("kms", PRIMARY).create_key()["KeyMetadata"]["Arn"]
    blob = _foreign_message(item, key_ids=[aws.primary_arn, second])
    aws.put_raw_item(REPLICA, {**item, "_ciphertext": {"B": blob}})
    aws.recorder.clear()

    result = aws.service(REPLICA).read({"id": "person-1"})

    assert result["error"]["type"] in REFUSALS, result
    assert aws.recorder.kms() == [], "max_encrypted_data_keys=1: refused from the header"


def test_a_message_without_key_commitment_is_refused_before_any_kms_call(aws: TwoRegions) -> None:
    from aws_encryption_sdk import Algorithm, CommitmentPolicy

    _, item = _written(aws)
    blob = _foreign_message(
        item,
        key_ids=[aws.primary_arn],
        commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
    )
    header, _ = deserialize_header(io.BytesIO(blob))
    assert header.algorithm == Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384, "a signed, non-committing suite"
    aws.put_raw_item(REPLICA, {**item, "_ciphertext": {"B": blob}})
    aws.recorder.clear()

    result = aws.service(REPLICA).read({"id": "person-1"})

    assert result["error"]["type"] in REFUSALS, result
    assert result.get("record") is None
    assert aws.recorder.kms() == [], "REQUIRE_ENCRYPT_REQUIRE_DECRYPT: refused before the data key is decrypted"
