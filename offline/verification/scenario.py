"""The cross-region verification, written once and run against the emulator or a real
deployment: only the invocation layer (and what each can inspect) differs.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from offline.verification.integrity import concurrent_regions_check, integrity_checks


@dataclass
class Invocation:
    result: dict[str, Any]
    calls: list[dict[str, Any]] | None = None  # AWS calls the function made, where observable
    duration_ms: float | None = None
    function_error: str | None = None


class Invoker(Protocol):
    def invoke(self, region: str, kind: str, event: dict[str, Any]) -> Invocation: ...


class Environment(Protocol):
    """What the scenario may inspect or do besides invoking the functions."""

    primary_region: str
    replica_regions: tuple[str, ...]
    sensitive_fields: tuple[str, ...]
    controls_replication_lag: bool

    def raw_item(self, region: str, item_id: str) -> dict[str, Any] | None: ...
    def put_raw_item(self, region: str, item: dict[str, Any]) -> None: ...
    def cross_role_denied(self, region: str, code_of: str, role_of: str, event: dict[str, Any]) -> tuple[bool, str]: ...
    def function_logs(self) -> str | None: ...


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Report:
    title: str
    checks: list[Check] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # the config tested; what is emulated / real

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def render(self) -> str:
        width = max(len(c.name) for c in self.checks) if self.checks else 10
        lines = [self.title, "=" * len(self.title), *self.header]
        if self.header:
            lines.append("")
        for c in self.checks:
            lines.append(f"{'PASS' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.seconds * 1000:7.0f} ms  {c.detail}")
        passed = sum(c.ok for c in self.checks)
        lines.append(f"{passed} passed, {len(self.checks) - passed} failed")
        return "\n".join(lines)


class Verification:
    def __init__(
        self,
        invoker: Invoker,
        env: Environment,
        *,
        replication_deadline_s: float = 30.0,
        progress: Callable[[str], None] | None = None,
        extra_checks: Callable[[], list[tuple[str, Callable[[], str]]]] | None = None,
        header: list[str] | None = None,
    ) -> None:
        self.invoker = invoker
        self.env = env
        self.deadline_s = replication_deadline_s
        self.progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        self.report = Report(
            f"Cross-region client-side encryption: write in {env.primary_region}, "
            f"read in {', '.join(env.replica_regions)}",
            header=list(header or []),
        )
        self.run_id = uuid.uuid4().hex[:8]
        self.extra_checks = extra_checks or (lambda: [])

    # -- helpers ---------------------------------------------------------------------------
    def _check(self, name: str, fn: Callable[[], str]) -> bool:
        self.progress(f"  ... {name}")
        started = time.monotonic()
        try:
            detail, ok = fn(), True
        except AssertionError as exc:
            detail, ok = str(exc) or "assertion failed", False
        except Exception as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self.report.checks.append(Check(name, ok, detail, time.monotonic() - started))
        self.progress(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
        return ok

    def sample_record(self, tag: str) -> dict[str, Any]:
        record: dict[str, Any] = {"name": f"Sample Person {tag}", "country": "NZ", "tier": 3}
        for i, field_name in enumerate(self.env.sensitive_fields):
            record[field_name] = f"SECRET-{field_name}-{self.run_id}-{tag}-{i}"
        return record

    def _item_id(self, tag: str) -> str:
        return f"verify-{self.run_id}-{tag}"

    def _error_type(self, inv: Invocation) -> str | None:
        if inv.function_error:
            return f"FunctionError:{inv.function_error}"
        if inv.result.get("ok"):
            return None
        return str(inv.result.get("error", {}).get("type"))

    @staticmethod
    def _failure(what: str, inv: Invocation) -> str:
        """What failed, plus which call was denied and why when the emulator knows it."""
        text = f"{what} failed: {json.dumps(inv.result)[:300]}"
        denied = [c for c in inv.calls or [] if not c.get("allowed", True)]
        if denied:
            c = denied[0]
            text += f"; denied {c['action']} on {c['resource']}: {c.get('reason', 'no reason given')}"
        return text

    def _write(self, tag: str) -> tuple[str, dict[str, Any], Invocation]:
        item_id, record = self._item_id(tag), self.sample_record(tag)
        inv = self.invoker.invoke(self.env.primary_region, "writer", {"id": item_id, "record": record})
        assert inv.result.get("ok") is True, self._failure("writer", inv)
        return item_id, record, inv

    def _read_until_replicated(self, region: str, item_id: str, *, min_version: int | None = None) -> Invocation:
        return read_until_replicated(self.invoker, region, item_id, self.deadline_s, min_version=min_version)

    def _no_plaintext(self, blob: Any, record: dict[str, Any]) -> None:
        text = json.dumps(blob, default=str)
        for name in self.env.sensitive_fields:
            assert str(record[name]) not in text, f"plaintext of '{name}' found"

    @staticmethod
    def _binary_attributes(item: dict[str, Any]) -> list[str]:
        return [k for k, v in item.items() if isinstance(v, dict) and "B" in v]

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Report:
        """Every check, in order; each is one small method (a name, and a detail when it passes)."""
        env = self.env
        state: dict[str, Any] = {}
        if not self._written_and_read_everywhere(state, "table"):
            return self.report
        for replica in env.replica_regions:
            self._negative_checks(replica, state)
        self._check("a malformed event gets a 4xx error and no AWS call", self._invalid_event)
        logs = env.function_logs()
        if logs is not None:
            self._check("function logs hold no plaintext", partial(self._clean_logs, logs))
        for name, check in self.extra_checks():
            self._check(name, check)
        return self.report

    def _written_and_read_everywhere(self, state: dict[str, Any], store: str) -> bool:
        """Write in the primary, read in every replica, only ciphertext at rest in every region
        (``store``: what holds the items, for the check names); False if the write failed."""
        env = self.env
        if not self._check(f"writer encrypts and writes in {env.primary_region}", partial(self._write_main, state)):
            return False
        for region in env.replica_regions:
            self._check(f"reader decrypts in {region} after replication", partial(self._read_main, region, state))
        for region in (env.primary_region, *env.replica_regions):
            self._check(
                f"{store} in {region} holds only ciphertext for sensitive fields", partial(self._at_rest, region, state)
            )
        return True

    def _negative_checks(self, replica: str, state: dict[str, Any]) -> None:
        self._check(
            f"reader in {replica} before replication gets a retryable NotFound",
            partial(self._before_replication, replica),
        )
        self._check(f"tampered item in {replica} is refused", partial(self._tampered, replica, state))
        self._check(f"ciphertext moved to another item in {replica} is refused", partial(self._moved, replica, state))
        integrity_checks(self, replica)
        concurrent_regions_check(self, replica)
        self._check(f"the reader's role in {replica} cannot write", partial(self._reader_cannot_write, replica))
        self._check(
            f"the writer's role in {replica} cannot decrypt", partial(self._writer_cannot_decrypt, replica, state)
        )

    # -- the checks ------------------------------------------------------------------------
    def _write_main(self, state: dict[str, Any]) -> str:
        item_id, record, inv = self._write("main")
        state.update(item_id=item_id, record=record)
        if inv.calls is None:
            return f"item {item_id}"
        primary = self.env.primary_region
        kms = [c for c in inv.calls if c["action"].startswith("kms:")]
        foreign = [c for c in kms if f":{primary}:" not in c["resource"]]
        assert not foreign, f"writer called KMS outside its region: {foreign}"
        called = ", ".join(c["action"] for c in kms) or "none (cached)"
        return f"item {item_id}; KMS calls: {called}, all in {primary}"

    def _read_main(self, region: str, state: dict[str, Any]) -> str:
        inv = self._read_until_replicated(region, state["item_id"])
        assert inv.result.get("ok") is True, self._failure("reader", inv)
        got = inv.result["record"]
        missing = {k: v for k, v in state["record"].items() if got.get(k) != v}
        assert not missing, f"decrypted record differs in {sorted(missing)}"
        assert inv.result.get("written_region") == self.env.primary_region, inv.result.get("written_region")
        detail = f"decrypted with the {region} replica of the multi-region key"
        if inv.calls is not None:
            kms = [c for c in inv.calls if c["action"].startswith("kms:")]
            foreign = [c["resource"] for c in kms if f":{region}:" not in c["resource"]]
            assert not foreign, f"reader called KMS outside {region}: {foreign}"
            called = ", ".join(c["action"] + " " + c["resource"].split(":")[3] for c in kms)
            detail += f"; KMS calls: {called or 'none (cached)'}"
        return detail

    def _at_rest(self, region: str, state: dict[str, Any]) -> str:
        item = self.env.raw_item(region, state["item_id"])
        assert item is not None, "item missing"
        self._no_plaintext(item, state["record"])
        binary = self._binary_attributes(item)
        assert len(binary) == 1, f"expected one ciphertext attribute, found {binary}"
        plain = [k for k in ("name", "country") if k in item]
        assert plain == ["name", "country"], "non-sensitive attributes should stay queryable"
        size = len(base64.b64encode(_bytes(item[binary[0]]["B"])))
        return f"sensitive fields only inside '{binary[0]}' ({size} b64 chars)"

    def _before_replication(self, replica: str) -> str:
        if self.env.controls_replication_lag:
            item_id, _, _ = self._write(f"fresh-{replica}")
        else:
            item_id = self._item_id("never-written")
        inv = self.invoker.invoke(replica, "reader", {"id": item_id})
        err = inv.result.get("error", {})
        assert err.get("type") == "NotFound" and err.get("retryable") is True, f"got {json.dumps(inv.result)[:200]}"
        return f"{err['type']} (retryable) for an item not yet in {replica}"

    def _tampered(self, replica: str, state: dict[str, Any]) -> str:
        # Its own item: a flip made here replicates, and must not disturb another region's check.
        item_id, _, _ = self._write(f"tamper-{replica}")
        self._read_until_replicated(replica, item_id)
        item = self.env.raw_item(replica, item_id)
        assert item is not None
        attr = self._binary_attributes(item)[0]
        blob = bytearray(_bytes(item[attr]["B"]))
        blob[-1] ^= 0x01  # the signature (signing suite) or the last frame's tag
        self.env.put_raw_item(replica, {**item, attr: {"B": bytes(blob)}})
        inv = self.invoker.invoke(replica, "reader", {"id": item_id})
        assert self._error_type(inv) == "TamperedCiphertext", f"got {json.dumps(inv.result)[:200]}"
        self._no_plaintext(inv.result, state["record"])
        self.env.put_raw_item(replica, item)
        return "a one-bit flip is refused with TamperedCiphertext and no plaintext"

    def _moved(self, replica: str, state: dict[str, Any]) -> str:
        other_id, _other_record, _ = self._write(f"other-{replica}")
        self._read_until_replicated(replica, other_id)
        source = self.env.raw_item(replica, state["item_id"])
        target = self.env.raw_item(replica, other_id)
        assert source is not None and target is not None
        attr = self._binary_attributes(source)[0]
        self.env.put_raw_item(replica, {**target, attr: source[attr]})
        inv = self.invoker.invoke(replica, "reader", {"id": other_id})
        assert self._error_type(inv) == "ContextMismatch", f"got {json.dumps(inv.result)[:200]}"
        self._no_plaintext(inv.result, state["record"])
        return "ciphertext copied onto another item is refused with ContextMismatch"

    def _reader_cannot_write(self, replica: str) -> str:
        event = {"id": self._item_id(f"by-reader-{replica}"), "record": self.sample_record("r")}
        denied, detail = self.env.cross_role_denied(replica, "writer", "reader", event)
        assert denied, detail
        return detail

    def _writer_cannot_decrypt(self, replica: str, state: dict[str, Any]) -> str:
        denied, detail = self.env.cross_role_denied(replica, "reader", "writer", {"id": state["item_id"]})
        assert denied, detail
        return detail

    def _invalid_event(self) -> str:
        inv = self.invoker.invoke(self.env.primary_region, "writer", {"id": "", "record": "not a mapping"})
        assert self._error_type(inv) == "InvalidEvent", f"got {json.dumps(inv.result)[:200]}"
        status = inv.result["error"].get("status")
        assert status == 400, status
        if inv.calls is not None:
            assert not inv.calls, f"AWS calls made for an invalid event: {inv.calls}"
            return "InvalidEvent (400) with no KMS or DynamoDB call"
        return "InvalidEvent (400)"

    def _clean_logs(self, logs: str) -> str:
        for name in self.env.sensitive_fields:
            assert f"SECRET-{name}-{self.run_id}" not in logs, f"plaintext of '{name}' in function logs"
        return f"{len(logs.splitlines())} log lines, no sensitive value"


def read_until_replicated(
    invoker: Invoker, region: str, item_id: str, deadline_s: float, *, min_version: int | None = None
) -> Invocation:
    """Read ``item_id`` in ``region`` until replication has brought it (or the version asked for):
    retried while the reader answers a retryable NotFound or StaleRecord, up to ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    delay = 0.1
    event: dict[str, Any] = {"id": item_id} if min_version is None else {"id": item_id, "min_version": min_version}
    while True:
        inv = invoker.invoke(region, "reader", event)
        error = inv.result.get("error", {})
        lagging = error.get("type") in ("NotFound", "StaleRecord") and error.get("retryable")
        if inv.result.get("ok") or not lagging:
            return inv
        if time.monotonic() > deadline:
            raise AssertionError(f"not replicated to {region} within {deadline_s:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return base64.b64decode(value)
    return bytes(value)
