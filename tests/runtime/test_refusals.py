"""Ciphertexts that were altered, moved, made with another key or suite are refused, and no
plaintext is released."""

from __future__ import annotations

import io
import logging
from typing import Any

import boto3
import pytest
from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header
from record_crypto.context import expected_context
from record_crypto.envelope import RecordCipher
from record_crypto.errors import ContextMismatch, WrongKey

from tests.runtime.conftest import PRIMARY, REPLICA, TABLE, TwoRegions, assert_no_plaintext, sample_record

REFUSALS = {"TamperedCiphertext", "ContextMismatch", "WrongKey", "UnexpectedAlgorithm"}


@pytest.mark.parametrize("suite", ["signing", "committing-unsigned"])
def test_a_bit_flip_anywhere_in_the_ciphertext_is_refused(aws: TwoRegions, suite: str) -> None:
    record, item = aws.written(ALGORITHM_SUITE=suite)
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
    record, source = aws.written("person-1", DATA_KEY_CACHE=cache)
    _, target = aws.written("person-2", DATA_KEY_CACHE=cache)
    aws.put_raw_item(REPLICA, {**target, "_ciphertext": source["_ciphertext"]})

    result = aws.service(REPLICA, DATA_KEY_CACHE=cache).read({"id": "person-2"})

    assert result["error"]["type"] == "ContextMismatch", result
    assert_no_plaintext(result, record)


def test_ciphertext_moved_into_another_table_is_refused_before_any_kms_call(aws: TwoRegions) -> None:
    record, item = aws.written()
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
    record, _ = aws.written(ALGORITHM_SUITE="committing-unsigned")
    result = aws.service(REPLICA, ALGORITHM_SUITE="signing").read({"id": "person-1"})
    assert result["error"]["type"] == "UnexpectedAlgorithm", result
    assert_no_plaintext(result, record)
    # The opposite direction is allowed: an unsigned-suite reader can read signed records.
    aws.written("person-2", ALGORITHM_SUITE="signing")
    assert aws.service(REPLICA, ALGORITHM_SUITE="committing-unsigned").read({"id": "person-2"})["ok"]


def test_an_item_without_ciphertext_is_refused(aws: TwoRegions) -> None:
    _record, item = aws.written()
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
    record, _ = aws.written(ALGORITHM_SUITE="committing-unsigned")
    aws.recorder.clear()
    result = aws.service(REPLICA, ALGORITHM_SUITE="signing").read({"id": "person-1"})
    assert result["error"]["type"] == "UnexpectedAlgorithm", result
    assert aws.recorder.kms() == []
    assert_no_plaintext(result, record)


def test_a_message_with_more_than_one_encrypted_data_key_is_refused_before_any_kms_call(aws: TwoRegions) -> None:
    _, item = aws.written()
    # Both data keys are wrapped by our MRK (primary and replica), so the header check passes
    # whichever comes first (the Encryption SDK does not keep their order).
    blob = _foreign_message(item, key_ids=[aws.primary_arn, aws.replica_arn])
    aws.put_raw_item(REPLICA, {**item, "_ciphertext": {"B": blob}})
    aws.recorder.clear()

    result = aws.service(REPLICA).read({"id": "person-1"})

    # Our header check looks at the first data key only (ours here): the count is the
    # Encryption SDK's max_encrypted_data_keys=1, checked while it parses the header. Without
    # that setting this message decrypts (its payload is a valid format-1 record).
    assert result["error"]["type"] == "TamperedCiphertext", result
    assert "more than one encrypted data key" in result["error"]["message"]
    assert aws.recorder.kms() == [], "max_encrypted_data_keys=1: refused from the header"


def test_a_message_without_key_commitment_is_refused_before_any_kms_call(aws: TwoRegions) -> None:
    from aws_encryption_sdk import Algorithm, CommitmentPolicy

    _, item = aws.written()
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


def test_bytes_after_the_end_of_the_message_are_refused(aws: TwoRegions) -> None:
    record, item = aws.written()
    blob = item["_ciphertext"]["B"]
    for tail in (b"\x00", b"appended by an attacker"):
        aws.put_raw_item(REPLICA, {**item, "_ciphertext": {"B": blob + tail}})
        result = aws.service(REPLICA).read({"id": "person-1"})
        assert result["error"]["type"] == "TamperedCiphertext", result
        assert f"{len(tail)} byte(s) follow" in result["error"]["message"]
        assert_no_plaintext(result, record)


def test_a_refused_message_logs_one_warning_of_ours_and_no_traceback(
    aws: TwoRegions, caplog: pytest.LogCaptureFixture
) -> None:
    record, item = aws.written()
    blob = bytearray(item["_ciphertext"]["B"])
    blob[-1] ^= 1  # the signature
    aws.put_raw_item(REPLICA, {**item, "_ciphertext": {"B": bytes(blob)}})
    reader = aws.service(REPLICA)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        assert reader.read({"id": "person-1"})["error"]["type"] == "TamperedCiphertext"
    sdk = [r for r in caplog.records if r.name.startswith("aws_encryption_sdk")]
    assert sdk == [], [r.getMessage() for r in sdk]
    assert [r for r in caplog.records if r.exc_info] == []
    ours = [r for r in caplog.records if r.name == "mrk_toolkit"]
    assert [(r.levelno, r.getMessage()) for r in ours] == [(logging.WARNING, "read refused: TamperedCiphertext")]
    assert_no_plaintext(caplog.text, record)


def _rewrite_key_info(blob: bytes, old: bytes, new: bytes) -> bytes:
    """Rename the key in a message header (length-prefixed field), as a forger would."""
    field = len(old).to_bytes(2, "big") + old
    assert blob.count(field) == 1
    return blob.replace(field, len(new).to_bytes(2, "big") + new)


@pytest.mark.parametrize(
    ("what", "rename"),
    [
        ("another account", lambda arn: arn.replace(":123456789012:", ":210987654321:")),
        ("another partition", lambda arn: arn.replace("arn:aws:", "arn:aws-cn:")),
        ("not an ARN", lambda arn: arn.split("/", 1)[1]),
    ],
)
def test_a_message_naming_our_key_id_elsewhere_is_wrong_key_before_any_kms_call(
    aws: TwoRegions, what: str, rename: Any
) -> None:
    record, item = aws.written()
    blob = item["_ciphertext"]["B"]
    forged = _rewrite_key_info(blob, aws.primary_arn.encode(), rename(aws.primary_arn).encode())
    aws.put_raw_item(REPLICA, {**item, "_ciphertext": {"B": forged}})
    aws.recorder.clear()

    result = aws.service(REPLICA).read({"id": "person-1"})

    assert result["error"]["type"] == "WrongKey" and result["error"]["status"] == 403, (what, result)
    assert aws.recorder.kms() == []
    assert_no_plaintext(result, record)
