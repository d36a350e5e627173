"""`python -m offline audit` against `python -m offline up` (the same code reads a real account): who
used which records key, where, for which record; the root's refused decrypt; table and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from offline.__main__ import main
from offline.runbooks.audit_trail import NO_RECORD, parse_since
from tests.offline.test_verify_served import served  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e


def _invoke(region: str, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply = boto3.client("lambda", region_name=region).invoke(
        FunctionName=function, Payload=json.dumps(payload).encode()
    )
    return json.loads(reply["Payload"].read())


def test_audit_names_the_writer_the_reader_and_the_record(
    default_assembly: Path,
    served: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = served(default_assembly)
    writer, reader = env.function_names[("us-east-2", "writer")], env.function_names[("us-west-1", "reader")]
    assert _invoke("us-east-2", writer, {"id": "audited-1", "record": {"ssn": "123"}})["ok"] is True
    env.replication.sync(env.deployment.tables, env.deployment.stream_arns)
    for _ in range(50):
        if _invoke("us-west-1", reader, {"id": "audited-1"}).get("ok"):
            break
    capsys.readouterr()
    assert main(["audit", "--region", "us-east-2", "--region", "us-west-1", "--record", "audited-1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    seen = {(r["region"], r["event"], r["role"], r["outcome"]) for r in rows}
    assert ("us-east-2", "GenerateDataKey", "writer", "ok") in seen
    assert ("us-west-1", "Decrypt", "reader", "ok") in seen
    assert all(r["record"] == "audited-1" for r in rows)
    assert main(["audit", "--region", "us-west-1"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "time",
        "region",
        "kind",
        "event",
        "role",
        "principal",
        "record",
        "outcome",
    ]
    assert "uses by anyone but the region's writer (GenerateDataKey) and reader (Decrypt)" in table
    assert NO_RECORD not in table  # the data-key cache is off: every use names its record
    assert main(["audit", "--region", "us-west-1", "-c", "mrk-toolkit:stackPrefix=Elsewhere"]) != 0
    assert "Elsewhere-Keys-us-west-1" in capsys.readouterr().err, "the prefix comes from the config (-c over cdk.json)"


def test_since_takes_an_iso_time_or_a_duration() -> None:
    assert parse_since("2026-12-01T08:00:00Z").isoformat() == "2026-12-01T08:00:00+00:00"
    assert parse_since("2026-12-01T08:00:00").tzinfo is not None
    with pytest.raises(ValueError, match="--since 'yesterday'"):
        parse_since("yesterday")
