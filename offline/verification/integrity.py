"""The table-writer attacks, run by the main job in a replica region (emulator or real account).

Each check acts as someone who holds only ``dynamodb:PutItem`` on the replica: it alters the
stored item directly, asks the region's reader for it, expects a refusal, and puts the
authentic item back. A last check shows what global tables' last-writer-wins does to two
regions writing one id at once (only where the run controls replication lag).
"""

from __future__ import annotations

import contextlib
import json
import time
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offline.verification.scenario import Verification


def _refusal(v: Verification, region: str, event: dict[str, Any], expected: str, record: dict[str, Any]) -> str:
    inv = v.invoker.invoke(region, "reader", event)
    got = v._error_type(inv)
    assert got == expected, f"expected {expected}, got {json.dumps(inv.result)[:240]}"
    v._no_plaintext(inv.result, record)
    return str(inv.result["error"]["message"])


def _altered(v: Verification, region: str, item_id: str, change: dict[str, Any]) -> dict[str, Any]:
    """Put the item back with ``change`` applied; returns the authentic item to restore."""
    item = v.env.raw_item(region, item_id)
    assert item is not None, f"{item_id} missing in {region}"
    v.env.put_raw_item(region, {**item, **change})
    return item


def written_once(v: Verification, region: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The item the attacks of ``region`` alter: written in the primary and replicated, once."""
    if not state:
        item_id, record, _ = v._write(f"integrity-{region}")
        inv = v._read_until_replicated(region, item_id)
        assert inv.result.get("ok") is True, v._failure("reader", inv)
        state.update(item_id=item_id, record=record)
    return state["item_id"], state["record"]


def integrity_checks(v: Verification, region: str) -> None:
    # Its own item: an altered copy put here replicates, and must not disturb other regions' checks.
    state: dict[str, Any] = {}
    written = partial(written_once, v, region, state)

    planted = v.env.sensitive_fields[0]

    def planted_value() -> str:
        item_id, record = written()
        authentic = _altered(v, region, item_id, {planted: {"S": "planted-by-a-table-writer"}})
        try:
            message = _refusal(v, region, {"id": item_id}, "TamperedRecord", record)
        finally:
            v.env.put_raw_item(region, authentic)
        return f"a plaintext '{planted}' beside the ciphertext is refused (TamperedRecord: {message[:70]}...)"

    def changed_attribute() -> str:
        item_id, record = written()
        authentic = _altered(v, region, item_id, {"name": {"S": "Mallory"}, "role": {"S": "admin"}})
        try:
            _refusal(v, region, {"id": item_id}, "TamperedRecord", record)
        finally:
            v.env.put_raw_item(region, authentic)
        return "'name' changed and 'role: admin' added: refused with TamperedRecord"

    def rolled_back() -> str:
        item_id, record = written()
        saved = v.env.raw_item(region, item_id)
        assert saved is not None
        version = int(saved["_version"]["N"])
        newer = v.invoker.invoke(v.env.primary_region, "writer", {"id": item_id, "record": record})
        assert newer.result.get("ok") is True, v._failure("writer", newer)
        current = newer.result["version"]
        assert current == version + 1, f"the rewrite got version {current}, expected {version + 1}"
        v._read_until_replicated(region, item_id, min_version=current)
        latest = v.env.raw_item(region, item_id)
        v.env.put_raw_item(region, saved)  # the attacker restores the older, authentic copy
        try:
            _refusal(v, region, {"id": item_id, "min_version": current}, "StaleRecord", record)
            plain = v.invoker.invoke(region, "reader", {"id": item_id})
            assert plain.result.get("version") == version, f"a plain read returned {json.dumps(plain.result)[:200]}"
        finally:
            assert latest is not None
            v.env.put_raw_item(region, latest)
        return (
            f"version {version} restored over {current}: refused with StaleRecord when the caller sends "
            f"min_version {current}; a plain read returns version {version} (it cannot know)"
        )

    v._check(f"planted sensitive value in {region} is refused", planted_value)
    v._check(f"changed plaintext attribute in {region} is refused", changed_attribute)
    v._check(f"rolled-back item in {region} is refused with min_version", rolled_back)


def concurrent_regions_check(v: Verification, region: str) -> None:
    """Two regions write one id inside the replication lag: both succeed, one write survives."""
    if not v.env.controls_replication_lag:
        return

    def last_writer_wins() -> str:
        item_id = v._item_id(f"both-regions-{region}")
        first = v.invoker.invoke(v.env.primary_region, "writer", {"id": item_id, "record": v.sample_record("p")})
        assert first.result.get("ok"), v._failure("writer", first)
        v._read_until_replicated(region, item_id)
        # Replication held while both regions write: each writer reads version 1 whatever the
        # machine's speed (with only the lag, a slow first write replicated before the second read).
        with _replication_held(v):
            writes = {
                r: v.invoker.invoke(r, "writer", {"id": item_id, "record": v.sample_record(r)})
                for r in (v.env.primary_region, region)
            }
        for r, inv in writes.items():
            assert inv.result.get("ok") and inv.result["version"] == 2, v._failure(f"writer in {r}", inv)
        winner = _converged(v, item_id, (v.env.primary_region, region))
        loser = next(r for r in writes if r != winner)
        return (
            f"both writes were acknowledged as version 2; replication kept the {winner} write in both regions "
            f"and the {loser} write is gone (global tables: last writer wins, no cross-region conditional write)"
        )

    v._check(f"two regions ({v.env.primary_region}, {region}) write one id at once", last_writer_wins)


def _replication_held(v: Verification) -> contextlib.AbstractContextManager[None]:
    replication = getattr(v.env, "replication", None)
    return replication.held() if replication is not None else contextlib.nullcontext()


def _converged(v: Verification, item_id: str, regions: tuple[str, ...]) -> str:
    deadline = time.monotonic() + v.deadline_s
    while True:
        items = [v.env.raw_item(r, item_id) for r in regions]
        if all(items) and all(i == items[0] for i in items):
            region = items[0]["_writer_region"]["S"]  # type: ignore[index]
            read = v.invoker.invoke(regions[-1], "reader", {"id": item_id})
            assert read.result.get("ok") and read.result["written_region"] == region, json.dumps(read.result)[:200]
            return str(region)
        assert time.monotonic() < deadline, f"regions did not converge within {v.deadline_s:.0f}s"
        time.sleep(0.2)
