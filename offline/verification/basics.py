"""What the checks of both stores share: one run's state (its id, the main record), the helpers
that write and read through the functions, and the checks both main jobs make (write in the
primary and read everywhere, the cross-role refusals, a malformed event, clean logs)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lambda_src.record_crypto.settings import STORE_DYNAMODB
from offline.verification.checks import Capability, Check, Environment, Invocation, Outcome, check


@dataclass
class Run:
    """What the checks of one run share: the id in every item they write, the main record."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    main: dict[str, Any] = field(default_factory=dict)  # item_id, record: written by the first check
    minted: list[str] = field(default_factory=list)  # every id handed out: what the clean-up deletes

    def item_id(self, tag: str) -> str:
        """The id of this run's item ``tag``; every id minted is deleted by the clean-up
        (offline/verification/cleanup.py), whether or not a write of it was acknowledged."""
        item_id = f"verify-{self.run_id}-{tag}"
        if item_id not in self.minted:
            self.minted.append(item_id)
        return item_id

    def sample_record(self, env: Environment, tag: str) -> dict[str, Any]:
        record: dict[str, Any] = {"name": f"Sample Person {tag}", "country": "NZ", "tier": 3}
        for i, field_name in enumerate(env.sensitive_fields):
            record[field_name] = f"SECRET-{field_name}-{self.run_id}-{tag}-{i}"
        return record


# -- helpers -------------------------------------------------------------------------------------
def write(run: Run, env: Environment, tag: str) -> tuple[str, dict[str, Any], Invocation]:
    """A sample record written by the primary's writer; fails the check if it is not acknowledged."""
    item_id, record = run.item_id(tag), run.sample_record(env, tag)
    inv = env.invoke(env.primary_region, "writer", {"id": item_id, "record": record})
    assert inv.result.get("ok") is True, failure("writer", inv)
    return item_id, record, inv


def read_until_replicated(
    env: Environment,
    region: str,
    item_id: str,
    *,
    min_version: int | None = None,
    deadline_s: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Invocation:
    """Read ``item_id`` in ``region`` until replication has brought it (or the version asked for):
    retried while the reader answers a retryable NotFound or StaleRecord, up to the deadline.
    ``extra``: more keys of the event (a deployment with tenants: ``tenant``)."""
    deadline_s = env.replication_deadline_s if deadline_s is None else deadline_s
    deadline = time.monotonic() + deadline_s
    delay = 0.1
    event: dict[str, Any] = {"id": item_id} if min_version is None else {"id": item_id, "min_version": min_version}
    event |= dict(extra or {})
    while True:
        inv = env.invoke(region, "reader", event)
        error = inv.result.get("error", {})
        lagging = error.get("type") in ("NotFound", "StaleRecord") and error.get("retryable")
        if inv.result.get("ok") or not lagging:
            return inv
        if time.monotonic() > deadline:
            raise AssertionError(f"not replicated to {region} within {deadline_s:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def error_type(inv: Invocation) -> str | None:
    if inv.function_error:
        return f"FunctionError:{inv.function_error}"
    if inv.result.get("ok"):
        return None
    return str(inv.result.get("error", {}).get("type"))


def failure(what: str, inv: Invocation) -> str:
    """What failed, plus which call was denied and why when the emulator knows it."""
    text = f"{what} failed: {json.dumps(inv.result)[:300]}"
    denied = [c for c in inv.calls or [] if not c.get("allowed", True)]
    if denied:
        c = denied[0]
        text += f"; denied {c['action']} on {c['resource']}: {c.get('reason', 'no reason given')}"
    return text


def no_plaintext(env: Environment, blob: Any, record: dict[str, Any]) -> None:
    text = json.dumps(blob, default=str)
    for name in env.sensitive_fields:
        assert str(record[name]) not in text, f"plaintext of '{name}' found"


def refused(env: Environment, region: str, event: dict[str, Any], expected: str, record: dict[str, Any]) -> str:
    """The reader of ``region`` refuses ``event`` with ``expected`` and shows no plaintext."""
    inv = env.invoke(region, "reader", event)
    assert error_type(inv) == expected, f"expected {expected}, got {json.dumps(inv.result)[:240]}"
    no_plaintext(env, inv.result, record)
    return str(inv.result["error"]["message"])


def written_once(run: Run, env: Environment, region: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The item the attacks of ``region`` alter: written in the primary and replicated, once (its
    own item: an altered copy put in one region replicates, and must not disturb another's checks)."""
    if not state:
        item_id, record, _ = write(run, env, f"integrity-{region}")
        inv = read_until_replicated(env, region, item_id)
        assert inv.result.get("ok") is True, failure("reader", inv)
        state.update(item_id=item_id, record=record)
    return state["item_id"], state["record"]


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(value)


# -- the checks both stores make -----------------------------------------------------------------
AtRest = Callable[[Run, str, Any], str]  # (run, region, env) -> detail: the main record as stored


def roundtrip_checks(run: Run, env: Environment, at_rest: AtRest, store: str, *needs: Capability) -> list[Check]:
    """Write in the primary (the checks after it need it), read in every replica, only ciphertext
    at rest in every region (``store``: what holds the items, for the names; ``needs``: what reading
    them takes)."""
    out = [check(f"writer encrypts and writes in {env.primary_region}", partial(_write_main, run), gate=True)]
    out += [
        check(f"reader decrypts in {region} after replication", partial(_read_main, run, region))
        for region in env.replica_regions
    ]
    out += [
        check(f"{store} in {region} holds only ciphertext for sensitive fields", partial(at_rest, run, region), *needs)
        for region in (env.primary_region, *env.replica_regions)
    ]
    return out


def cross_role_checks(run: Run, region: str) -> list[Check]:
    return [
        check(f"the reader's role in {region} cannot write", partial(_reader_cannot_write, run, region)),
        check(f"the writer's role in {region} cannot decrypt", partial(_writer_cannot_decrypt, run, region)),
    ]


def closing_checks(run: Run) -> list[Check]:
    return [
        check("a malformed event gets a 4xx error and no AWS call", _invalid_event),
        check("function logs hold no plaintext", partial(_clean_logs, run), Capability.FUNCTION_LOGS),
    ]


def _write_main(run: Run, env: Environment) -> str:
    item_id, record, inv = write(run, env, "main")
    run.main.update(item_id=item_id, record=record)
    if inv.calls is None:
        return f"item {item_id}"
    primary = env.primary_region
    kms = [c for c in inv.calls if c["action"].startswith("kms:")]
    foreign = [c for c in kms if f":{primary}:" not in c["resource"]]
    assert not foreign, f"writer called KMS outside its region: {foreign}"
    called = ", ".join(c["action"] for c in kms) or "none (cached)"
    return f"item {item_id}; KMS calls: {called}, all in {primary}"


def _read_main(run: Run, region: str, env: Environment) -> str:
    inv = read_until_replicated(env, region, run.main["item_id"])
    assert inv.result.get("ok") is True, failure("reader", inv)
    got = inv.result["record"]
    missing = {k: v for k, v in run.main["record"].items() if got.get(k) != v}
    assert not missing, f"decrypted record differs in {sorted(missing)}"
    assert inv.result.get("written_region") == env.primary_region, inv.result.get("written_region")
    detail = f"decrypted with the {region} replica of the multi-region key"
    if inv.calls is not None:
        kms = [c for c in inv.calls if c["action"].startswith("kms:")]
        foreign = [c["resource"] for c in kms if f":{region}:" not in c["resource"]]
        assert not foreign, f"reader called KMS outside {region}: {foreign}"
        called = ", ".join(c["action"] + " " + c["resource"].split(":")[3] for c in kms)
        detail += f"; KMS calls: {called or 'none (cached)'}"
    return detail


def _reader_cannot_write(run: Run, region: str, env: Environment) -> str:
    event = {"id": run.item_id(f"by-reader-{region}"), "record": run.sample_record(env, "r")}
    denied, detail = env.cross_role_denied(region, "writer", "reader", event)
    assert denied, detail
    return detail


def _writer_cannot_decrypt(run: Run, region: str, env: Environment) -> str:
    denied, detail = env.cross_role_denied(region, "reader", "writer", {"id": run.main["item_id"]})
    assert denied, detail
    return detail


def _invalid_event(env: Environment) -> str:
    inv = env.invoke(env.primary_region, "writer", {"id": "", "record": "not a mapping"})
    assert error_type(inv) == "InvalidEvent", f"got {json.dumps(inv.result)[:200]}"
    status = inv.result["error"].get("status")
    assert status == 400, status
    if inv.calls is not None:
        assert not inv.calls, f"AWS calls made for an invalid event: {inv.calls}"
        services = "KMS, DynamoDB" if env.store == STORE_DYNAMODB else "KMS, Secrets Manager"
        return f"InvalidEvent (400) with no AWS call ({services})"
    return "InvalidEvent (400)"


def _clean_logs(run: Run, env: Environment) -> str:
    logs = env.function_logs()
    for name in env.sensitive_fields:
        assert f"SECRET-{name}-{run.run_id}" not in logs, f"plaintext of '{name}' in function logs"
    return f"{len(logs.splitlines())} log lines, no sensitive value"


# -- the clean-up: whatever the checks did, the items they wrote go ------------------------------
CLEAN_UP = "clean-up: every item this run wrote is deleted in every region"
LEFT_BEHIND = (
    "what no clean-up undoes: the functions' log lines and metrics of these calls and CloudTrail's record of "
    "the KMS and DynamoDB calls"
)
ALARMS_FIRED = (
    "; the tamper checks' refusals fired the readers' security alarms (they return to OK after a period "
    "without refusals)"
)


def clean_up(run: Run) -> Check:
    """The run's last check, run whatever happened before it (scenario.py ``run_main_job``)."""
    return check(CLEAN_UP, partial(_clean_up, run))


def _clean_up(run: Run, env: Environment) -> Outcome:
    """Delete every id the run minted (written, corrupted, half-written or not) in every region, until a
    pass finds none anywhere: a copy put in one region just before may still replicate to another."""
    regions = (env.primary_region, *env.replica_regions)
    deleted: dict[str, set[str]] = {}
    deadline = time.monotonic() + env.replication_deadline_s
    while True:
        left = [(r, i) for i in run.minted for r in regions if env.raw_item(r, i) is not None]
        if not left:
            break
        assert time.monotonic() < deadline, f"still there after {env.replication_deadline_s:.0f}s: {left[:4]}"
        for region, item_id in left:
            env.delete_raw_item(region, item_id)
            deleted.setdefault(item_id, set()).add(region)
        time.sleep(0.2)
    ids = sorted(deleted)
    prefix = f"verify-{run.run_id}-"
    fired = ALARMS_FIRED if Capability.ALTER_ITEMS in env.capabilities else ""
    return Outcome(
        f"wrote {len(ids)} items ({prefix}*) and deleted them; none of the {len(run.minted)} ids the run used "
        f"is left in {', '.join(regions)}",
        lines=[f"deleted: {', '.join(i.removeprefix(prefix) for i in ids) or 'nothing'}", LEFT_BEHIND + fired],
        figures={"written": ids, "deleted": len(ids)},
    )
