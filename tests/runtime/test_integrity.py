"""A record read back is the record a writer wrote, whole.

Each test is an attack by someone who holds nothing but ``dynamodb:PutItem`` on one replica (an
application bug, a DynamoDB administrator, a leaked role): no key access at all. They plant,
change, add, remove or roll back attributes of an item, and the reader must refuse the item
(``TamperedRecord``, or ``StaleRecord`` when the caller says which version it last saw) without
returning any of it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.runtime.conftest import PRIMARY, REPLICA, TwoRegions, assert_no_plaintext, race_once, sample_record


def _read(aws: TwoRegions, event: dict[str, Any], **env: str) -> dict[str, Any]:
    return aws.service(REPLICA, **env).read(event)


def _refused(result: dict[str, Any], error_type: str = "TamperedRecord") -> dict[str, Any]:
    assert result["ok"] is False, f"the altered item was returned as authentic: {result}"
    assert result["error"]["type"] == error_type, result
    assert "record" not in result
    return result["error"]


# -- planted sensitive values -----------------------------------------------------------------
@pytest.mark.parametrize("cache", ["off", "on"])
def test_a_planted_plaintext_sensitive_field_is_refused_before_any_kms_call(aws: TwoRegions, cache: str) -> None:
    record = {"name": "Ada", "ssn": "SECRET-ssn-1"}  # no 'diagnosis' in the ciphertext
    _, item = aws.written(record=record, DATA_KEY_CACHE=cache)
    aws.put_raw_item(REPLICA, {**item, "diagnosis": {"S": "planted by the attacker"}})
    aws.recorder.clear()

    error = _refused(_read(aws, {"id": "person-1"}, DATA_KEY_CACHE=cache))

    assert error["status"] == 422 and "diagnosis" in error["message"]
    assert aws.recorder.kms() == [], "refused from the item alone"


def test_an_attribute_planted_as_deep_as_dynamodb_allows_is_a_tampered_record(aws: TwoRegions) -> None:
    """DynamoDB refuses items nested deeper than 32 levels, so the deepest an attacker can plant is
    32 (a PostgreSQL jsonb column takes thousands: tests/runtime/test_postgres_store.py); at 32 the
    reader still answers with the security refusal, not Internal."""
    _, item = aws.written()
    value: dict[str, Any] = {"S": "bottom"}
    for _ in range(31):
        value = {"L": [value]}
    aws.put_raw_item(REPLICA, {**item, "nested": value})
    assert "nested" in _refused(_read(aws, {"id": "person-1"}))["message"]


def test_an_older_ciphertext_without_a_field_plus_that_field_in_plaintext_is_refused(aws: TwoRegions) -> None:
    """The card-number swap: replay a ciphertext that lacks the field, plant the field beside it."""
    _, old = aws.written(record={"name": "Ada", "dob": "SECRET-dob-1"})
    aws.written(record={"name": "Ada", "dob": "SECRET-dob-1", "ssn": "SECRET-ssn-real"})
    aws.put_raw_item(REPLICA, {**old, "ssn": {"S": "SECRET-ssn-attacker"}})

    _refused(_read(aws, {"id": "person-1"}))


# -- changed, added, removed plaintext attributes -----------------------------------------------
CHANGES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("changed name", "name", {"S": "Mallory"}),
    ("number changed", "tier", {"N": "4"}),
    ("type changed (N to S)", "tier", {"S": "3"}),
    ("list changed to a set", "tags", {"SS": ["x", "y"]}),
    ("added role: admin", "role", {"S": "admin"}),
    ("removed country", "country", None),
    ("writer region changed", "_writer_region", {"S": REPLICA}),
    ("written_at changed", "_written_at", {"S": "2020-01-01T00:00:00.000+00:00"}),
    ("version raised", "_version", {"N": "7"}),
    ("schema changed", "_schema", {"S": "1"}),
    ("toolkit attribute added", "_admin", {"BOOL": True}),
]


@pytest.mark.parametrize("cache", ["off", "on"])
@pytest.mark.parametrize(("case", "name", "value"), CHANGES, ids=[c for c, _, _ in CHANGES])
def test_a_changed_added_or_removed_plaintext_attribute_is_refused(
    aws: TwoRegions, cache: str, case: str, name: str, value: dict[str, Any] | None
) -> None:
    record, item = aws.written(DATA_KEY_CACHE=cache)
    altered = {k: v for k, v in item.items() if k != name}
    if value is not None:
        altered[name] = value
    aws.put_raw_item(REPLICA, altered)

    error = _refused(_read(aws, {"id": "person-1"}, DATA_KEY_CACHE=cache))

    assert error["status"] == 422
    assert_no_plaintext(error, record)


def test_the_untouched_item_still_reads_with_its_authenticated_metadata(aws: TwoRegions) -> None:
    record, _ = aws.written()
    result = _read(aws, {"id": "person-1"})
    assert result["ok"], result
    assert result["record"] == record
    assert (result["version"], result["format"], result["unsigned"]) == (1, 2, {})
    assert result["written_region"] == PRIMARY and result["written_at"].endswith("+00:00")


# -- unsigned attributes ------------------------------------------------------------------------
def test_attributes_listed_as_unsigned_are_returned_apart_and_may_change(aws: TwoRegions) -> None:
    env = {"UNSIGNED_ATTRIBUTES": "note,ttl"}
    record = {**sample_record(), "note": "first", "ttl": 1_900_000_000}
    _, item = aws.written(record=record, **env)
    aws.put_raw_item(REPLICA, {**item, "note": {"S": "changed by another process"}})

    result = _read(aws, {"id": "person-1"}, **env)

    assert result["ok"], result
    assert result["unsigned"] == {"note": "changed by another process", "ttl": 1_900_000_000}
    assert "note" not in result["record"] and "ttl" not in result["record"]
    # Unsigned is an allow-list: any other unexpected attribute is still refused.
    aws.put_raw_item(REPLICA, {**item, "role": {"S": "admin"}})
    _refused(_read(aws, {"id": "person-1"}, **env))


def test_an_unsigned_attribute_may_never_carry_a_sensitive_field(aws: TwoRegions) -> None:
    from record_crypto.settings import ConfigurationError, Settings

    with pytest.raises(ConfigurationError, match="UNSIGNED_ATTRIBUTES"):
        Settings.from_env(aws.env(REPLICA, UNSIGNED_ATTRIBUTES="ssn"))


# -- versions and rollback ----------------------------------------------------------------------
def test_each_write_of_an_id_gets_the_next_version(aws: TwoRegions) -> None:
    writer = aws.service(PRIMARY)
    versions = [writer.write({"id": "p", "record": sample_record(str(i))})["version"] for i in range(3)]
    assert versions == [1, 2, 3]
    aws.replicate("p")
    assert _read(aws, {"id": "p"})["version"] == 3


def test_a_rolled_back_item_is_refused_when_the_caller_says_what_it_last_saw(aws: TwoRegions) -> None:
    old_record, saved = aws.written()
    new = aws.service(PRIMARY).write({"id": "person-1", "record": sample_record("new")})
    assert new["version"] == 2
    aws.put_raw_item(REPLICA, saved)  # the attacker restores the saved copy

    stale = _read(aws, {"id": "person-1", "min_version": new["version"]})
    error = _refused(stale, "StaleRecord")
    assert (error["status"], error["retryable"]) == (412, True)
    assert_no_plaintext(stale, old_record)
    # What a plain read cannot tell: the old copy is authentic, and is returned as version 1.
    plain = _read(aws, {"id": "person-1"})
    assert plain["ok"] and plain["version"] == 1


def test_replication_lag_looks_like_a_stale_record_and_clears_when_it_arrives(aws: TwoRegions) -> None:
    aws.written()
    second = aws.service(PRIMARY).write({"id": "person-1", "record": sample_record("2")})
    assert _refused(_read(aws, {"id": "person-1", "min_version": 2}), "StaleRecord")["retryable"] is True
    aws.replicate("person-1")
    assert _read(aws, {"id": "person-1", "min_version": second["version"]})["version"] == 2


def test_expected_version_gives_callers_optimistic_locking(aws: TwoRegions) -> None:
    writer = aws.service(PRIMARY)
    assert writer.write({"id": "p", "record": {"name": "a"}, "expected_version": 0})["version"] == 1
    assert writer.write({"id": "p", "record": {"name": "b"}, "expected_version": 1})["version"] == 2

    conflict = writer.write({"id": "p", "record": {"name": "lost?"}, "expected_version": 1})

    assert conflict["ok"] is False and conflict["error"]["type"] == "VersionConflict", conflict
    assert (conflict["error"]["status"], conflict["error"]["retryable"]) == (409, False)
    item = aws.raw_item(PRIMARY, "p")
    assert item is not None and item["name"] == {"S": "b"} and item["_version"] == {"N": "2"}, "nothing overwritten"
    assert writer.write({"id": "p", "record": {"name": "c"}, "expected_version": 0})["error"]["type"] == (
        "VersionConflict"
    ), "expected_version 0 means: create only"


def test_a_concurrent_writer_is_retried_never_silently_overwritten(aws: TwoRegions) -> None:
    slow, fast = aws.service(PRIMARY), aws.service(PRIMARY)
    assert slow.write({"id": "p", "record": {"name": "v1"}})["version"] == 1
    raced = race_once(slow, lambda: fast.write({"id": "p", "record": {"name": "fast"}}))
    result = slow.write({"id": "p", "record": {"name": "slow"}})

    assert raced[0]["version"] == 2
    assert result["ok"] and result["version"] == 3, "re-read the version and wrote the next one"
    puts = aws.recorder.table("PutItem")
    assert len(puts) == 4, "v1, the racing write, the refused attempt, the retry"


def test_a_writer_that_keeps_losing_the_race_gets_a_retryable_version_conflict(aws: TwoRegions) -> None:
    faults = {"dynamodb.PutItem": ["ConditionalCheckFailedException"] * 3}
    result = aws.service(PRIMARY, faults=faults).write({"id": "p", "record": {"name": "a"}})
    assert result["ok"] is False and result["error"]["type"] == "VersionConflict", result
    assert (result["error"]["status"], result["error"]["retryable"]) == (409, True)


def test_the_writer_reads_only_the_stored_version(aws: TwoRegions) -> None:
    aws.written()
    aws.recorder.clear()
    assert aws.service(PRIMARY).write({"id": "person-1", "record": sample_record("2")})["ok"]
    (get,) = aws.recorder.table("GetItem")
    names = get.params["ExpressionAttributeNames"]
    projected = [names.get(p, p) for p in get.params["ProjectionExpression"].split(",")]
    assert projected == ["_version"], get.params
    (put,) = aws.recorder.table("PutItem")
    assert put.params["ConditionExpression"] == "#v = :current"
    assert put.params["ExpressionAttributeValues"] == {":current": {"N": "1"}}


def test_a_garbage_stored_version_stops_the_writer_with_a_clear_error(aws: TwoRegions) -> None:
    _, item = aws.written()
    aws.put_raw_item(PRIMARY, {**item, "_version": {"S": "not-a-number"}})
    result = aws.service(PRIMARY).write({"id": "person-1", "record": sample_record("2")})
    assert result["error"]["type"] == "TamperedRecord" and "_version" in result["error"]["message"], result


@pytest.mark.parametrize("field", ["expected_version", "min_version"])
@pytest.mark.parametrize("bad", [-1, "2", 1.5, True, 2**53])
def test_bad_versions_in_events_are_invalid(aws: TwoRegions, field: str, bad: Any) -> None:
    if field == "expected_version":
        result = aws.service(PRIMARY).write({"id": "p", "record": {"name": "a"}, field: bad})
    else:
        result = _read(aws, {"id": "p", field: bad})
    assert result["error"]["type"] == "InvalidEvent" and field in result["error"]["message"], result
    assert aws.recorder.calls == []


# -- items written before signing (format 1) ----------------------------------------------------
def _legacy_item(aws: TwoRegions, item_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """An item exactly as the format-1 writer stored it (before attributes were signed)."""
    from record_crypto.context import expected_context
    from record_crypto.envelope import RecordCipher
    from record_crypto.records import canonical_json, split_record, to_attribute_values

    plain, secret, _ = split_record(record, ("ssn", "dob", "diagnosis"))
    payload = canonical_json({"id": item_id, "fields": secret, "schema": "1"})
    blob = RecordCipher(key_arn=aws.primary_arn).encrypt(
        payload, expected_context(table="mrk-toolkit-records", item_id=item_id)
    )
    return {
        **to_attribute_values(plain),
        "id": {"S": item_id},
        "_ciphertext": {"B": blob},
        "_writer_region": {"S": PRIMARY},
        "_schema": {"S": "1"},
        "_written_at": {"S": "2026-11-01T00:00:00.000+00:00"},
    }


def test_a_format_1_item_is_read_with_everything_unauthenticated_marked(aws: TwoRegions) -> None:
    record = sample_record()
    aws.put_raw_item(REPLICA, _legacy_item(aws, "old-1", record))

    result = _read(aws, {"id": "old-1"})

    assert result["ok"], result
    assert (result["format"], result["version"]) == (1, 0)
    assert result["record"] == {k: record[k] for k in ("ssn", "dob", "diagnosis")}, "only what was authenticated"
    assert result["unsigned"]["name"] == record["name"] and result["unsigned"]["_writer_region"] == PRIMARY
    assert result["written_region"] is None, "format 1 never authenticated who wrote it"


def test_a_format_1_item_with_a_planted_sensitive_field_or_below_min_version_is_refused(aws: TwoRegions) -> None:
    item = _legacy_item(aws, "old-1", {"name": "Ada", "ssn": "SECRET-ssn-1"})
    aws.put_raw_item(REPLICA, {**item, "dob": {"S": "planted"}})
    _refused(_read(aws, {"id": "old-1"}))
    aws.put_raw_item(REPLICA, item)
    _refused(_read(aws, {"id": "old-1", "min_version": 1}), "StaleRecord")


def test_rewriting_a_format_1_item_migrates_it_to_version_1(aws: TwoRegions) -> None:
    aws.put_raw_item(PRIMARY, _legacy_item(aws, "old-1", sample_record()))
    written = aws.service(PRIMARY).write({"id": "old-1", "record": sample_record("migrated")})
    assert written["ok"] and written["version"] == 1, written
    aws.replicate("old-1")
    assert _read(aws, {"id": "old-1"})["format"] == 2


def test_a_downgrade_to_a_format_1_copy_returns_nothing_unauthenticated_and_fails_min_version(
    aws: TwoRegions,
) -> None:
    """A table writer replaces a format-2 item with a pre-signing copy of the same id (from a
    backup): the plaintext it brings is never inside ``record``, and ``min_version`` refuses it."""
    aws.written()
    legacy = _legacy_item(aws, "person-1", {"name": "Mallory", "ssn": "SECRET-ssn-old"})
    aws.put_raw_item(REPLICA, {**legacy, "role": {"S": "admin"}})

    plain = _read(aws, {"id": "person-1"})
    assert plain["ok"] and (plain["format"], plain["version"]) == (1, 0), plain
    assert plain["record"] == {"ssn": "SECRET-ssn-old"}, "only what the old ciphertext authenticates"
    assert plain["unsigned"]["name"] == "Mallory" and plain["unsigned"]["role"] == "admin"
    _refused(_read(aws, {"id": "person-1", "min_version": 1}), "StaleRecord")
