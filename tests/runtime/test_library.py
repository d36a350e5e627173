"""record_crypto as a library: settings validated as the functions' are, typed results, errors
raised as RecordError subclasses, and the README's example run as written."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import PRIMARY, REPLICA, TABLE, TwoRegions, sample_record


def test_put_and_get_return_typed_results_and_raise_record_errors(aws: TwoRegions) -> None:
    from record_crypto import RecordError, RecordService, Settings

    settings = Settings.create(
        table_name=TABLE, mrk_arn=aws.primary_arn, region=PRIMARY, sensitive_fields=["ssn", "dob", "diagnosis"]
    )
    records = RecordService(settings)
    written = records.put("p1", sample_record())
    assert (written.version, written.encrypted_fields) == (1, ["diagnosis", "dob", "ssn"])
    aws.replicate("p1")
    reader = RecordService(
        Settings.create(
            table_name=TABLE, mrk_arn=aws.replica_arn, region=REPLICA, sensitive_fields=["ssn", "dob", "diagnosis"]
        )
    )
    read = reader.get("p1", min_version=1)
    assert read.record == sample_record() and read.version == 1 and read.read_region == REPLICA

    with pytest.raises(RecordError) as stale:
        reader.get("p1", min_version=2)
    assert (stale.value.type, stale.value.retryable) == ("StaleRecord", True)
    with pytest.raises(RecordError) as conflict:
        records.put("p1", {"name": "x"}, expected_version=0)
    assert conflict.value.type == "VersionConflict"


def test_settings_for_a_library_are_validated_like_the_functions(aws: TwoRegions) -> None:
    from record_crypto import ConfigurationError, Settings

    with pytest.raises(ConfigurationError, match="RECORDS_MRK_ARN"):
        Settings.create(table_name=TABLE, mrk_arn=aws.primary_arn, region=REPLICA, sensitive_fields=["ssn"])
    with pytest.raises(ConfigurationError, match="SENSITIVE_FIELDS"):
        Settings.create(table_name=TABLE, mrk_arn=aws.primary_arn, region=PRIMARY, sensitive_fields=["card-number"])


def test_the_readme_example_runs_as_written(aws: TwoRegions, capsys: pytest.CaptureFixture[str]) -> None:
    from examples.records_from_python import main

    assert main(["--region", PRIMARY, "--table", TABLE, "--key-arn", aws.primary_arn]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "stored example-1 version 1 in us-east-2, encrypted ['ssn']"
    assert out[1] == "read example-1 version 1 in us-east-2: name=Ada, ssn decrypted"
    assert out[2].startswith("refused: VersionConflict (409)")
    assert out[3] == "updated example-1 to version 2"
