"""The beacon backfill of a deployment with tenants (issue 21; README "Adding a beacon field", "Beacons with
tenants"). On `python -m offline up` served from this process, with acme in both regions and globex in
us-west-1 only: records of both tenants written before the field (globex's in us-west-1, the same ssn as
acme's); `deploy` adds the field; each tenant's lookups say `complete: false` and miss the old records; a
record of a tenant the config does not know (planted in the table) is refused and reported, and no region is
marked; once it is removed, `backfill` reads and rewrites each record as its tenant, through the reader and
writer of the tenant's first region (globex's: us-west-1, where the primary's reader answers
TenantNotInRegion), marks both regions; then each tenant finds its own old records in each of its regions
with `complete: true`, and never the other's.

The Aurora store with tenants the same way (the tenant read from its attributes column).

Without the emulator: which regions are marked when a record of one tenant is refused (only the regions that
serve that tenant are held back), and the tenant in both events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lambda_src.record_crypto.beacons import BACKFILL_INCOMPLETE_TTL_S
from lambda_src.record_crypto.errors import TenantNotInRegion
from lambda_src.record_crypto.settings import TENANT_KEY, BeaconField, beacon_backfill_state
from offline.runbooks import backfill as runbook
from tests.offline.test_beacon_backfill import _state  # the same field's backfill state
from tests.offline.test_lifecycle import PREFIX, client, invoke, run_offline, up  # noqa: F401

PRIMARY, REPLICA = "us-east-2", "us-west-1"
TABLE = "mrk-toolkit-records"
SSN = BeaconField("ssn", 24, "digits")
TENANTS = {"acme": {}, "globex": {"regions": [REPLICA]}}  # acme: every region
SHARED_SSN, GLOBEX_SSN = "078-05-1120", "219-09-9999"
OLD = {  # id -> (tenant, the region it is written in, record)
    "a1": ("acme", PRIMARY, {"name": "Ada", "ssn": SHARED_SSN}),
    "a2": ("acme", PRIMARY, {"name": "Bo"}),  # no ssn: nothing to backfill
    "g1": ("globex", REPLICA, {"name": "Gus", "ssn": SHARED_SSN}),
    "g2": ("globex", REPLICA, {"name": "Gia", "ssn": GLOBEX_SSN}),
}
CONTEXT = (
    f"-c 'mrk-toolkit:tenants={json.dumps(TENANTS)}' "
    '-c \'mrk-toolkit:beaconFields={"ssn":{"bits":24,"normalize":"digits"}}\''
)
UP = f"python -m offline up -c 'mrk-toolkit:tenants={json.dumps(TENANTS)}'"
DEPLOY = f"python -m offline deploy {CONTEXT}"
BACKFILL = f"python -m offline backfill --field ssn {CONTEXT}"


def finder(region: str, tenant: str, value: str) -> dict[str, Any]:
    stack = client("cloudformation", region).describe_stacks(StackName=f"{PREFIX}-Functions-{region}")["Stacks"][0]
    name = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "FinderFunctionName")
    event = {"field": "ssn", "value": value, TENANT_KEY: tenant}
    reply = client("lambda", region).invoke(FunctionName=name, Payload=json.dumps(event))
    return json.loads(reply["Payload"].read())  # type: ignore[no-any-return]


def until(region: str, tenant: str, value: str, done: Any, deadline_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while True:
        found = finder(region, tenant, value)
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _write_old_records() -> None:
    for item_id, (tenant, region, record) in OLD.items():
        assert invoke(region, "writer", {"id": item_id, "record": record, TENANT_KEY: tenant})["ok"] is True
    for item_id, (tenant, _, _) in OLD.items():  # replicated to every region that serves the tenant
        for region in (PRIMARY, REPLICA) if tenant == "acme" else (REPLICA,):
            deadline = time.monotonic() + 30
            while not invoke(region, "reader", {"id": item_id, TENANT_KEY: tenant}).get("ok"):
                assert time.monotonic() < deadline, (item_id, region)
                time.sleep(0.2)


@pytest.mark.e2e
def test_records_of_two_tenants_backfilled_each_in_its_region(
    up: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    def while_up(_env: Any) -> None:
        _write_old_records()
        # globex's records are read where globex's key is, never in the primary region.
        elsewhere = invoke(PRIMARY, "reader", {"id": "g1", TENANT_KEY: "globex"})
        assert elsewhere.get("error", {}).get("type") == TenantNotInRegion.type, elsewhere
        code, out, err = run_offline(DEPLOY, capsys)
        assert code == 0, (out, err)
        for region, tenant in ((PRIMARY, "acme"), (REPLICA, "acme"), (REPLICA, "globex")):
            before = until(region, tenant, SHARED_SSN, lambda f: f.get("ok") is True)
            assert before["ok"] is True and before["complete"] is False and before["matches"] == [], before

        # A record of a tenant the config does not know: refused and reported, never guessed; nothing marked.
        ddb = client("dynamodb", PRIMARY)
        a1 = ddb.get_item(TableName=TABLE, Key={"id": {"S": "a1"}})["Item"]
        ddb.put_item(TableName=TABLE, Item={**a1, "id": {"S": "u1"}, "_tenant": {"S": "umbrella"}})
        code, out, _ = run_offline(BACKFILL, capsys)
        assert code == 1 and "REFUSED u1: tenant 'umbrella' has no region in the config" in out, out
        assert _state(PRIMARY) is None and _state(REPLICA) is None, out
        ddb.delete_item(TableName=TABLE, Key={"id": {"S": "u1"}})

        code, out, _ = run_offline(BACKFILL, capsys)
        assert code == 0 and f"complete in {PRIMARY}, {REPLICA}" in out, out
        assert _state(PRIMARY) == _state(REPLICA) == beacon_backfill_state(SSN)
        for item_id, (tenant, _, record) in OLD.items():  # rewritten as its tenant, in its tenant's region
            there = REPLICA if tenant == "globex" else PRIMARY
            read = invoke(there, "reader", {"id": item_id, TENANT_KEY: tenant})
            assert read["record"] == record and read["version"] == (1 if item_id == "a2" else 2), read
            stored = ddb.get_item(TableName=TABLE, Key={"id": {"S": item_id}})["Item"]
            assert stored["_tenant"] == {"S": tenant} and stored["_writer_region"]["S"] == there, stored

        def ids(found: dict[str, Any]) -> list[str]:
            assert found.get("ok") is True and found["complete"] is True, found
            return [m["id"] for m in found["matches"]]

        done = lambda f: f.get("complete") is True  # noqa: E731
        wait = BACKFILL_INCOMPLETE_TTL_S + 30
        for region in (PRIMARY, REPLICA):
            assert ids(until(region, "acme", SHARED_SSN, done, wait)) == ["a1"], region
            assert ids(finder(region, "acme", GLOBEX_SSN)) == [], "globex's value found for acme"
        assert ids(until(REPLICA, "globex", SHARED_SSN, done, wait)) == ["g1"]
        found = finder(REPLICA, "globex", GLOBEX_SSN)
        assert ids(found) == ["g2"] and found["matches"][0]["record"] == OLD["g2"][2], found
        code, out, _ = run_offline(BACKFILL, capsys)  # idempotent
        assert code == 0 and "0 rewritten" in out, out

    up(UP, while_up)


# -- without the emulator: the runbook's choices, on a store and functions held in memory ----------
class Memory:
    """One table replicated at once to every region; a reader and writer per region that hold the keys of
    the tenants given (elsewhere: TenantNotInRegion), beacon computed as "b" + the value."""

    def __init__(self, keys: dict[str, set[str]], items: dict[str, dict[str, Any]]) -> None:
        self.keys, self.items, self.events = keys, items, list[tuple[str, str, dict[str, Any]]]()

    def records(self, region: str, beacon_field: BeaconField, page_size: int) -> Iterator[runbook.Stored]:
        for item_id, item in sorted(self.items.items()):
            yield runbook.Stored(item_id, item["version"], "beacon" in item, item.get("tenant"))

    def functions_in(self, region: str) -> Any:
        memory = self

        class In:
            def read(self, item_id: str, tenant: str | None = None) -> dict[str, Any]:
                memory.events.append((region, "read", {"id": item_id, TENANT_KEY: tenant}))
                item = memory.items[item_id]
                if tenant not in memory.keys[region] or item.get("tenant") != tenant:
                    return {"ok": False, "error": {"type": "TenantNotInRegion"}}
                if item.get("tampered"):
                    return {"ok": False, "error": {"type": "TamperedRecord"}}
                return {"ok": True, "format": 2, "record": dict(item["record"]), "version": item["version"]}

            def write(self, event: dict[str, Any]) -> dict[str, Any]:
                memory.events.append((region, "write", event))
                item = memory.items[event["id"]]
                if event.get(TENANT_KEY) != item.get("tenant") or event[TENANT_KEY] not in memory.keys[region]:
                    return {"ok": False, "error": {"type": "TenantNotInRegion"}}
                if event["expected_version"] != item["version"]:
                    return {"ok": False, "error": {"type": "VersionConflict"}}
                item.update(record=event["record"], version=item["version"] + 1, beacon=True)
                return {"ok": True, "version": item["version"]}

        return In()


def _memory(**extra: dict[str, Any]) -> Memory:
    items = {
        "a1": {"tenant": "acme", "version": 1, "record": {"ssn": "1"}},
        "g1": {"tenant": "globex", "version": 1, "record": {"ssn": "2"}},
        **extra,
    }
    return Memory({PRIMARY: {"acme"}, REPLICA: {"acme", "globex"}}, items)


def _run(memory: Memory) -> runbook.Outcome:
    marked: list[str] = []
    outcome = runbook.backfill(
        SSN,
        store=memory,
        functions=memory.functions_in(PRIMARY),
        primary=PRIMARY,
        regions=(PRIMARY, REPLICA),
        mark=marked.append,
        rate=10_000,
        tenants={"acme": (PRIMARY, REPLICA), "globex": (REPLICA,)},
        functions_in=memory.functions_in,
    )
    assert outcome.marked == marked
    return outcome


def test_each_record_goes_through_its_tenants_first_region_as_its_tenant() -> None:
    memory = _memory()
    outcome = _run(memory)
    assert outcome.complete and outcome.marked == [PRIMARY, REPLICA] and outcome.rewritten == 2, outcome
    writes = [(region, e["id"], e.get(TENANT_KEY)) for region, kind, e in memory.events if kind == "write"]
    assert writes == [(PRIMARY, "a1", "acme"), (REPLICA, "g1", "globex")], memory.events
    reads = {(region, e["id"], e[TENANT_KEY]) for region, kind, e in memory.events if kind == "read"}
    assert reads == {(PRIMARY, "a1", "acme"), (REPLICA, "g1", "globex")}, memory.events


def test_a_refused_record_holds_back_only_the_regions_of_its_tenant() -> None:
    """globex's tampered record: us-west-1 (which serves globex) is not marked; us-east-2 (acme only) is."""
    outcome = _run(_memory(g2={"tenant": "globex", "version": 1, "record": {"ssn": "3"}, "tampered": True}))
    assert outcome.refused == {"g2": "TamperedRecord"} and not outcome.complete, outcome
    assert outcome.marked == [PRIMARY] and outcome.blocked == [REPLICA], outcome
    assert f"{REPLICA}: not marked: a refused record of a tenant served there" in runbook.render(outcome)


@pytest.mark.parametrize(
    ("tenant", "why"),
    [(None, "no tenant stored on it"), ("umbrella", "tenant 'umbrella' has no region in the config")],
)
def test_a_record_of_no_known_tenant_is_refused_never_guessed_and_nothing_is_marked(
    tenant: str | None, why: str
) -> None:
    memory = _memory(u1={"tenant": tenant, "version": 1, "record": {"ssn": "4"}})
    outcome = _run(memory)
    assert outcome.refused == {"u1": why} and outcome.marked == [], outcome
    assert outcome.blocked == [PRIMARY, REPLICA], outcome
    assert all(e["id"] != "u1" for _, _, e in memory.events), "a record of no known tenant was read or written"


# The Aurora store: acme in the primary only, globex in the secondary only (its writer writes through the
# global writer endpoint).
AURORA_TENANTS = {"acme": {"regions": [PRIMARY]}, "globex": {"regions": [REPLICA]}}
AURORA = f"-c mrk-toolkit:store=aurora-postgresql -c 'mrk-toolkit:tenants={json.dumps(AURORA_TENANTS)}'"
BEACON = '-c \'mrk-toolkit:beaconFields={"ssn":{"bits":24,"normalize":"digits"}}\''


@pytest.mark.e2e
def test_the_aurora_store_with_tenants_backfilled(up: Any, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """The Aurora store keeps the tenant in the attributes column (``_tenant``): the scan of each cluster
    reads it there, each record is rewritten as its tenant in its tenant's first region: acme's in the
    primary, globex's in us-west-1 (no globex key in the primary), whose writer writes through the global
    writer endpoint."""

    def while_up(_env: Any) -> None:
        for item_id, tenant, region in (("a1", "acme", PRIMARY), ("g1", "globex", REPLICA)):
            written = invoke(region, "writer", {"id": item_id, "record": {"ssn": SHARED_SSN}, TENANT_KEY: tenant})
            assert written["ok"] is True, written
        refused = invoke(PRIMARY, "writer", {"id": "g2", "record": {"ssn": GLOBEX_SSN}, TENANT_KEY: "globex"})
        assert refused["error"]["type"] == TenantNotInRegion.type, refused
        code, out, err = run_offline(f"python -m offline deploy {AURORA} {BEACON}", capsys)
        assert code == 0, (out, err)
        before = until(REPLICA, "globex", SHARED_SSN, lambda f: f.get("ok") is True)
        assert before["complete"] is False and before["matches"] == [], before
        code, out, _ = run_offline(f"python -m offline backfill --field ssn {AURORA} {BEACON}", capsys)
        assert code == 0 and f"complete in {PRIMARY}, {REPLICA}" in out and "2 rewritten" in out, out
        wait = BACKFILL_INCOMPLETE_TTL_S + 30
        for region, tenant, item_id in ((PRIMARY, "acme", "a1"), (REPLICA, "globex", "g1")):
            found = until(region, tenant, SHARED_SSN, lambda f: f.get("complete") is True, wait)
            assert found["complete"] is True and [m["id"] for m in found["matches"]] == [item_id], (region, found)

    up(f"python -m offline up {AURORA}", while_up)
