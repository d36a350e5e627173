"""A beacon field added to a running deployment (issue 21 item 4), as README "Adding a beacon field" tells it,
line by line against `python -m offline up` served from this process: records written before the field
existed; the warm writer and reader keep answering while `deploy` adds the field; the finder refuses with
the retryable IndexNotReady while DynamoDB builds the index (the emulator refuses a Query of a CREATING
index as DynamoDB does), then answers `complete: false` and misses the old records; a beacon planted on an
old record is refused by the backfill's read and the field is not marked; once it is removed, `backfill`
rewrites the old records through the functions (a concurrent write wins over the backfill's) and marks
the field in both regions; the finders then say `complete: true` and find the old records, in the replica
region too."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from lambda_src.record_crypto.beacons import BACKFILL_INCOMPLETE_TTL_S
from lambda_src.record_crypto.settings import BeaconField, beacon_backfill_path, beacon_backfill_state
from offline.emulator import index_builds
from offline.runbooks import backfill as runbook
from tests.offline.test_lifecycle import PREFIX, argv, client, invoke, readme_block, run_offline, up  # noqa: F401

pytestmark = pytest.mark.e2e
PRIMARY, REPLICA = "us-east-2", "us-west-1"
TABLE = "mrk-toolkit-records"
SSN = BeaconField("ssn", 24, "digits")
OLD = {
    "p1": {"name": "Ada", "ssn": "078-05-1120"},
    "p2": {"name": "Bo"},  # no ssn: nothing to backfill
    "p3": {"name": "Cy", "ssn": "219-09-9999"},
}


def finder(region: str, value: str) -> dict[str, Any]:
    stack = client("cloudformation", region).describe_stacks(StackName=f"{PREFIX}-Functions-{region}")["Stacks"][0]
    name = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "FinderFunctionName")
    reply = client("lambda", region).invoke(FunctionName=name, Payload=json.dumps({"field": "ssn", "value": value}))
    return json.loads(reply["Payload"].read())  # type: ignore[no-any-return]


def until(region: str, value: str, done: Any, deadline_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while True:
        found = finder(region, value)
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


class Traffic:
    """The application's calls while the stack update runs: a write and a read, again and again."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            self.results.append(invoke(PRIMARY, "writer", {"id": f"t{i % 5}", "record": {"name": f"T{i}"}}))
            self.results.append(invoke(PRIMARY, "reader", {"id": "p2"}))

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def _deploy_with_traffic(line: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Traffic() as traffic:
        code, out, err = run_offline(line, capsys)
        assert code == 0, (out, err)
        assert "index beacon-ssn added" in out, out
        refused = finder(PRIMARY, "078-05-1120")  # the index is still building
    assert refused["ok"] is False and refused["error"]["type"] == "IndexNotReady", refused
    assert refused["error"]["retryable"] is True and refused["error"]["status"] == 503, refused
    assert len(traffic.results) >= 4 and all(r.get("ok") for r in traffic.results), [
        r for r in traffic.results if not r.get("ok")
    ]


def _plant(item_id: str, beacon_of: str) -> dict[str, Any]:
    """A table writer copies a record's beacon onto an old record (one the backfill has not rewritten)."""
    ddb = client("dynamodb", PRIMARY)
    beacon = ddb.get_item(TableName=TABLE, Key={"id": {"S": beacon_of}})["Item"][SSN.attribute]
    item = ddb.get_item(TableName=TABLE, Key={"id": {"S": item_id}})["Item"]
    ddb.put_item(TableName=TABLE, Item={**item, SSN.attribute: beacon})
    return item  # type: ignore[no-any-return]


def _state(region: str) -> str | None:
    try:
        name = f"{beacon_backfill_path(PREFIX, region)}/{SSN.name}"
        return client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"]  # type: ignore[no-any-return]
    except client("ssm", region).exceptions.ParameterNotFound:
        return None


def test_a_beacon_field_added_to_a_running_deployment_and_backfilled(
    up: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps = readme_block("beacon-backfill")
    assert [s.split()[:4] for s in steps] == [
        ["python", "-m", "offline", "up"],
        ["python", "-m", "offline", "deploy"],
        ["python", "-m", "offline", "backfill"],
    ], "the README's steps changed: update this test's checks between them"
    monkeypatch.setattr(index_builds, "BUILD_SECONDS", 20.0)  # long enough to see the finder refused

    def while_up(_env: Any) -> None:
        for item_id, record in OLD.items():
            assert invoke(PRIMARY, "writer", {"id": item_id, "record": record})["ok"] is True
        _deploy_with_traffic(steps[1], capsys)
        # Index built: the finder answers, says it may be incomplete, and misses the old record.
        before = until(PRIMARY, "078-05-1120", lambda f: f.get("ok") is True)
        assert before["ok"] is True and before["complete"] is False and before["matches"] == [], before
        assert invoke(PRIMARY, "writer", {"id": "n1", "record": {"ssn": "078 05 1120"}})["ok"] is True
        new = until(REPLICA, "078051120", lambda f: f.get("matches"))
        assert [m["id"] for m in new["matches"]] == ["n1"] and new["complete"] is False, new
        # A planted beacon on an old record: refused by the backfill's read, nothing marked.
        saved = _plant("p3", beacon_of="n1")
        code, out, _ = run_offline(steps[2], capsys)
        assert code == 1 and "REFUSED p3: TamperedRecord" in out and "not marked complete" in out, out
        assert _state(PRIMARY) is None and _state(REPLICA) is None
        assert client("dynamodb", PRIMARY).get_item(TableName=TABLE, Key={"id": {"S": "p3"}})["Item"]["_version"] == {
            "N": "1"
        }, "the tampered record was not rewritten"
        client("dynamodb", PRIMARY).put_item(TableName=TABLE, Item=saved)  # restored (as from a backup)
        # Run again: it finishes and marks both regions.
        code, out, _ = run_offline(steps[2], capsys)
        assert code == 0, out
        assert f"complete in {PRIMARY}, {REPLICA}" in out, out
        assert _state(PRIMARY) == _state(REPLICA) == beacon_backfill_state(SSN)
        for region in (REPLICA, PRIMARY):
            after = until(region, "078-05-1120", lambda f: f.get("complete") is True, BACKFILL_INCOMPLETE_TTL_S + 30)
            assert after["complete"] is True, after
            assert [m["id"] for m in after["matches"]] == ["n1", "p1"], after
            assert after["matches"][1]["record"] == OLD["p1"] and after["matches"][1]["version"] == 2, after
            p3 = finder(region, "219-09-9999")
            assert [m["id"] for m in p3["matches"]] == ["p3"], p3
        p2 = invoke(REPLICA, "reader", {"id": "p2"})
        assert p2["version"] == 1 and p2["record"] == OLD["p2"], "a record without the field is not rewritten"
        # Idempotent: a third run reads again, rewrites nothing.
        code, out, _ = run_offline(steps[2], capsys)
        assert code == 0 and "0 rewritten" in out, out

    up(steps[0], while_up)


class Interleaved:
    """The real functions, with another writer's write of a record landing between the backfill's read of
    it and its rewrite (the race the expected version settles)."""

    def __init__(self, functions: runbook.InvokedFunctions, race_on: str) -> None:
        self.functions, self.race_on, self.raced = functions, race_on, False

    def read(self, item_id: str) -> dict[str, Any]:
        result = self.functions.read(item_id)
        if item_id == self.race_on and not self.raced:
            self.raced = True
            newer = {"id": item_id, "record": {"name": "Ada L.", "ssn": "078-05-1120"}}
            assert self.functions.write(newer)["ok"] is True
        return result

    def write(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.functions.write(event)


def test_a_concurrent_write_wins_over_the_backfill(up: Any, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    steps = readme_block("beacon-backfill")

    def while_up(_env: Any) -> None:
        for item_id, record in OLD.items():
            assert invoke(PRIMARY, "writer", {"id": item_id, "record": record})["ok"] is True
        assert run_offline(steps[1], capsys)[0] == 0
        session = boto3.Session()

        def factory(service: str, region: str) -> Any:
            return session.client(service, region_name=region)  # type: ignore[call-overload]

        real = runbook.InvokedFunctions(factory, PRIMARY, runbook.function_names(factory, PREFIX, PRIMARY))
        outcome = runbook.backfill(
            SSN,
            store=runbook.DynamoDbScan(factory, TABLE),
            functions=Interleaved(real, race_on="p1"),
            primary=PRIMARY,
            regions=(PRIMARY, REPLICA),
            mark=runbook.marker(factory, PREFIX, SSN),
            rate=1000,
        )
        assert outcome.conflicts == 1 and outcome.complete, outcome
        p1 = invoke(PRIMARY, "reader", {"id": "p1"})
        assert p1["record"]["name"] == "Ada L." and p1["version"] == 2, "the newer write stands, not overwritten"
        assert outcome.rewritten == 1  # p3 only: p1's newer version was written with its beacon

    up(steps[0], while_up)


AURORA = "-c mrk-toolkit:store=aurora-postgresql"


def test_the_aurora_store_backfilled_after_the_column_is_added(up: Any, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """The same README steps with the Aurora PostgreSQL store: the stack update's schema setup adds the column
    and its index; the backfill scans each region's cluster through its reader endpoint (the reader's login)
    and rewrites through the functions; the secondary region's finder then finds the old records."""
    steps = [f"{line.split('#')[0].strip()} {AURORA}" for line in readme_block("beacon-backfill")]

    def while_up(_env: Any) -> None:
        for item_id, record in OLD.items():
            assert invoke(PRIMARY, "writer", {"id": item_id, "record": record})["ok"] is True
        code, out, err = run_offline(steps[1], capsys)
        assert code == 0, (out, err)
        before = until(REPLICA, "078-05-1120", lambda f: f.get("ok") is True)
        assert before["ok"] is True and before["complete"] is False and before["matches"] == [], before
        code, out, _ = run_offline(steps[2], capsys)
        assert code == 0 and f"complete in {PRIMARY}, {REPLICA}" in out and "1 without a value" in out, out
        after = until(REPLICA, "078-05-1120", lambda f: f.get("complete") is True, BACKFILL_INCOMPLETE_TTL_S + 30)
        assert after["complete"] is True and [m["id"] for m in after["matches"]] == ["p1"], after
        assert after["matches"][0]["record"] == OLD["p1"] and after["matches"][0]["version"] == 2, after

    up(steps[0], while_up)


BEACON = '-c \'mrk-toolkit:beaconFields={"ssn":{"bits":24}}\''


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("python -m offline backfill --field ssn", "not a beacon field of the config"),
        (f"python -m offline backfill --field dob {BEACON}", "--field dob: not a beacon field"),
        (f"python -m offline backfill --field ssn --rate 0 {BEACON}", "--rate above 0"),
    ],
)
def test_backfill_refuses_a_bad_command_before_any_aws_call(
    line: str, says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing answers there: no call may be made
    code, out, err = run_offline(line, capsys)
    assert code == 2 and says in err, (out, err)
