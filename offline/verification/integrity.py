"""The table-writer attacks of the DynamoDB store's main job, in a replica region (emulator or real
account).

Each check acts as someone who holds only ``dynamodb:PutItem`` on the replica: it alters the
stored item directly, asks the region's reader for it, expects a refusal, and puts the
authentic item back. A last check shows what global tables' last-writer-wins does to two
regions writing one id at once (it holds replication: the emulator only).
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from offline.verification.basics import (
    Run,
    as_bytes,
    failure,
    read_until_replicated,
    refused,
    write,
    written_once,
)
from offline.verification.checks import Capability, Check, Environment, check

ALTER = Capability.ALTER_ITEMS  # a real account's verify has it unless --no-tamper-checks


def integrity_checks(run: Run, env: Environment, region: str) -> list[Check]:
    state: dict[str, Any] = {}  # the item the planted, changed and rolled-back attacks of this region alter
    primary = env.primary_region
    return [
        check(f"tampered item in {region} is refused", partial(_tampered, run, region), ALTER),
        check(f"ciphertext moved to another item in {region} is refused", partial(_moved, run, region), ALTER),
        check(f"planted sensitive value in {region} is refused", partial(_planted, run, region, state), ALTER),
        check(f"changed plaintext attribute in {region} is refused", partial(_changed, run, region, state), ALTER),
        check(
            f"rolled-back item in {region} is refused with min_version",
            partial(_rolled_back, run, region, state),
            ALTER,
        ),
        check(
            f"two regions ({primary}, {region}) write one id at once",
            partial(_last_writer_wins, run, region),
            Capability.HOLD_REPLICATION,
        ),
    ]


def _binary_attributes(item: dict[str, Any]) -> list[str]:
    return [k for k, v in item.items() if isinstance(v, dict) and "B" in v]


def _altered(env: Environment, region: str, item_id: str, change: dict[str, Any]) -> dict[str, Any]:
    """Put the item back with ``change`` applied; returns the authentic item to restore."""
    item = env.raw_item(region, item_id)
    assert item is not None, f"{item_id} missing in {region}"
    env.put_raw_item(region, {**item, **change})
    return item


def _tampered(run: Run, region: str, env: Environment) -> str:
    # Its own item: a flip made here replicates, and must not disturb another region's check.
    item_id, _, _ = write(run, env, f"tamper-{region}")
    read_until_replicated(env, region, item_id)
    item = env.raw_item(region, item_id)
    assert item is not None
    attr = _binary_attributes(item)[0]
    blob = bytearray(as_bytes(item[attr]["B"]))
    blob[-1] ^= 0x01  # the signature (signing suite) or the last frame's tag
    env.put_raw_item(region, {**item, attr: {"B": bytes(blob)}})
    try:
        refused(env, region, {"id": item_id}, "TamperedCiphertext", run.main["record"])
    finally:
        env.put_raw_item(region, item)
    return "a one-bit flip is refused with TamperedCiphertext and no plaintext"


def _moved(run: Run, region: str, env: Environment) -> str:
    other_id, _, _ = write(run, env, f"other-{region}")
    read_until_replicated(env, region, other_id)
    source = env.raw_item(region, run.main["item_id"])
    target = env.raw_item(region, other_id)
    assert source is not None and target is not None
    attr = _binary_attributes(source)[0]
    env.put_raw_item(region, {**target, attr: source[attr]})
    refused(env, region, {"id": other_id}, "ContextMismatch", run.main["record"])
    return "ciphertext copied onto another item is refused with ContextMismatch"


def _planted(run: Run, region: str, state: dict[str, Any], env: Environment) -> str:
    planted = env.sensitive_fields[0]
    item_id, record = written_once(run, env, region, state)
    authentic = _altered(env, region, item_id, {planted: {"S": "planted-by-a-table-writer"}})
    try:
        message = refused(env, region, {"id": item_id}, "TamperedRecord", record)
    finally:
        env.put_raw_item(region, authentic)
    return f"a plaintext '{planted}' beside the ciphertext is refused (TamperedRecord: {message[:70]}...)"


def _changed(run: Run, region: str, state: dict[str, Any], env: Environment) -> str:
    item_id, record = written_once(run, env, region, state)
    authentic = _altered(env, region, item_id, {"name": {"S": "Mallory"}, "role": {"S": "admin"}})
    try:
        refused(env, region, {"id": item_id}, "TamperedRecord", record)
    finally:
        env.put_raw_item(region, authentic)
    return "'name' changed and 'role: admin' added: refused with TamperedRecord"


def _rolled_back(run: Run, region: str, state: dict[str, Any], env: Environment) -> str:
    item_id, record = written_once(run, env, region, state)
    saved = env.raw_item(region, item_id)
    assert saved is not None
    version = int(saved["_version"]["N"])
    newer = env.invoke(env.primary_region, "writer", {"id": item_id, "record": record})
    assert newer.result.get("ok") is True, failure("writer", newer)
    current = newer.result["version"]
    assert current == version + 1, f"the rewrite got version {current}, expected {version + 1}"
    read_until_replicated(env, region, item_id, min_version=current)
    latest = env.raw_item(region, item_id)
    env.put_raw_item(region, saved)  # the attacker restores the older, authentic copy
    try:
        refused(env, region, {"id": item_id, "min_version": current}, "StaleRecord", record)
        plain = env.invoke(region, "reader", {"id": item_id})
        assert plain.result.get("version") == version, f"a plain read returned {json.dumps(plain.result)[:200]}"
    finally:
        assert latest is not None
        env.put_raw_item(region, latest)
    return (
        f"version {version} restored over {current}: refused with StaleRecord when the caller sends "
        f"min_version {current}; a plain read returns version {version} (it cannot know)"
    )


def _last_writer_wins(run: Run, region: str, env: Environment) -> str:
    """Two regions write one id inside the replication lag: both succeed, one write survives."""
    primary = env.primary_region
    item_id = run.item_id(f"both-regions-{region}")
    first = env.invoke(primary, "writer", {"id": item_id, "record": run.sample_record(env, "p")})
    assert first.result.get("ok"), failure("writer", first)
    read_until_replicated(env, region, item_id)
    # Replication held while both regions write: each writer reads version 1 whatever the
    # machine's speed (with only the lag, a slow first write replicated before the second read).
    with env.held_replication():
        writes = {
            r: env.invoke(r, "writer", {"id": item_id, "record": run.sample_record(env, r)}) for r in (primary, region)
        }
    for r, inv in writes.items():
        assert inv.result.get("ok") and inv.result["version"] == 2, failure(f"writer in {r}", inv)
    winner = _converged(env, item_id, (primary, region))
    loser = next(r for r in writes if r != winner)
    return (
        f"both writes were acknowledged as version 2; replication kept the {winner} write in both regions "
        f"and the {loser} write is gone (global tables: last writer wins, no cross-region conditional write)"
    )


def _converged(env: Environment, item_id: str, regions: tuple[str, ...]) -> str:
    deadline = time.monotonic() + env.replication_deadline_s
    while True:
        items = [env.raw_item(r, item_id) for r in regions]
        if all(items) and all(i == items[0] for i in items):
            region = items[0]["_writer_region"]["S"]  # type: ignore[index]
            read = env.invoke(regions[-1], "reader", {"id": item_id})
            assert read.result.get("ok") and read.result["written_region"] == region, json.dumps(read.result)[:200]
            return str(region)
        assert time.monotonic() < deadline, f"regions did not converge within {env.replication_deadline_s:.0f}s"
        time.sleep(0.2)
