"""One way to write a check, one environment it runs against, one report.

A check is a name and a small function that takes an environment and returns what it found (a
line, or an ``Outcome`` with more lines and figures); it fails by raising (``assert`` with a
message saying what is wrong). The main job, ``verify`` and every drill are lists of checks run by
``run_checks`` into one ``Report``.

The environment is the emulator (offline/verification/emulated.py) or a real account
(offline/verification/deployed.py), behind ``Environment``. What only the emulator can do (hold
replication, take a region down, read the functions' logs, ...) is a ``Capability``: a check that
needs one declares it, and where the environment lacks it the check is reported ``N/A`` with the
reason, never silently left out. The environment raises ``NotApplicable`` if a check calls such an
operation without declaring it, and that check fails.

Checks that hold what they read (the deployed invariants, the signals, and the permissions and
resources checks) are written as ``NamedCheck`` tuples ``(name, fn() -> detail)``; ``as_check``
takes them as they are.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Capability(StrEnum):
    """What an environment can do beyond the AWS APIs every account has (the emulator can)."""

    HOLD_REPLICATION = "hold replication while two regions write"
    OUTAGES = "take a region's endpoints down"
    FUNCTION_LOGS = "read the functions' logs"
    EVALUATE_ALARMS = "feed the functions' metric lines to CloudWatch and evaluate an alarm at once"
    ROTATE_AT_WILL = "rotate the key on demand at will (AWS allows 10 on-demand rotations per key, for life)"
    DATABASE_SESSIONS = "open SQL sessions on each region's database (the master user's, the functions' roles')"
    DATABASE_SERVERS = "stop, kill and promote each region's database server"
    ROTATE_SECRETS = "rotate a database secret on demand (on an account: a production password change, unannounced)"
    AUDIT_ALERTS = "see at once what EventBridge delivered for the audit rules (on AWS: subscribe to the alarm topic)"
    ALTER_ITEMS = "alter stored test items as a table writer would (the readers' refusals fire the security alarms)"
    TENANT_SESSIONS = "act as a function's role and take a tenant's session of its tenant-access role"


# Capabilities a real account has unless the user turned them off: (why the check did not run).
TURNED_OFF = {Capability.ALTER_ITEMS: "skipped (--no-tamper-checks): it alters a stored item, which fires the alarms"}


class NotApplicable(Exception):
    """Raised by an environment asked for a capability it does not have."""

    def __init__(self, capability: Capability) -> None:
        super().__init__(f"this environment cannot {capability}")
        self.capability = capability


@dataclass
class Invocation:
    result: dict[str, Any]
    calls: list[dict[str, Any]] | None = None  # AWS calls the function made, where observable
    duration_ms: float | None = None
    function_error: str | None = None


class Environment(Protocol):
    """What a check may use: the deployment's shape, the functions, the deployed resources read back
    through the AWS APIs, and the capabilities it declares (the others raise ``NotApplicable``)."""

    primary_region: str
    replica_regions: tuple[str, ...]
    sensitive_fields: tuple[str, ...]
    replication_deadline_s: float
    kms_decider: str  # who decides ``kms_allowed``: "the emulated KMS", "IAM's policy simulator"

    @property
    def store(self) -> str: ...  # "dynamodb" or "aurora-postgresql"
    @property
    def tenant_regions(self) -> Mapping[str, tuple[str, ...]]: ...  # tenant -> regions of its key ({}: none)
    def tenant_session_kms(
        self, region: str, kind: str, tenant: str, kms_region: str | None = None
    ) -> tuple[Any, dict[str, str]]: ...
    # TENANT_SESSIONS: (a KMS client under that function's tenant session, of ``kms_region`` (default: the
    # function's region), tenant -> key ARN in the function's region)
    @property
    def beacon_fields(self) -> tuple[Any, ...]: ...  # settings.BeaconField of the finder ((): no beacons)
    @property
    def table_name(self) -> str: ...
    @property
    def function_names(self) -> Mapping[tuple[str, str], str]: ...  # (region, "writer"|"reader") -> name
    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def invoke(self, region: str, kind: str, event: dict[str, Any]) -> Invocation: ...
    def client(self, service: str, region: str) -> Any: ...
    @property
    def reader(self) -> Any: ...  # offline/verification/invariants.py DeployedReader: the deployment read back
    def observed_context(self) -> Mapping[str, str] | None: ...
    def kms_allowed(self, region: str, kind: str, action: str, context: Mapping[str, str]) -> tuple[bool, str]: ...
    def raw_item(self, region: str, item_id: str) -> dict[str, Any] | None: ...
    def put_raw_item(self, region: str, item: dict[str, Any]) -> None: ...
    def delete_raw_item(self, region: str, item_id: str) -> None: ...  # the clean-up (basics.py)
    def cross_role_denied(self, region: str, code_of: str, role_of: str, event: dict[str, Any]) -> tuple[bool, str]: ...
    def problems(self) -> list[str]: ...  # what went wrong in the environment itself during the run
    # -- capabilities --------------------------------------------------------------------------
    def held_replication(self) -> AbstractContextManager[None]: ...  # HOLD_REPLICATION
    def outage(self, region: str, *, down: bool, services: Iterable[str] = ()) -> None: ...  # OUTAGES
    def function_logs(self) -> str: ...  # FUNCTION_LOGS
    def logs_by_region(self) -> Mapping[str, str]: ...  # FUNCTION_LOGS
    def database(self) -> Any: ...  # DATABASE_SESSIONS (and _SERVERS): emulated.py EmulatedDatabase
    def audit_deliveries(self) -> list[dict[str, Any]]: ...  # AUDIT_ALERTS: offline/emulator/cloudtrail.py


NamedCheck = tuple[str, Callable[[], str]]


@dataclass
class Outcome:
    """What a check found: its line, more lines shown under it, and figures (for --json, benchmarks)."""

    detail: str
    lines: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


class Failed(AssertionError):
    """A failure that keeps what was measured (its lines and figures are reported too)."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Any], str | Outcome]  # the environment -> what it found; raises to fail
    needs: frozenset[Capability] = frozenset()
    gate: bool = False  # the checks after it depend on it: a failure stops the list


def check(name: str, run: Callable[[Any], str | Outcome], *needs: Capability, gate: bool = False) -> Check:
    return Check(name, run, frozenset(needs), gate)


def as_check(item: Check | NamedCheck) -> Check:
    """A ``NamedCheck`` (which holds what it reads) as a check; a ``Check`` as it is."""
    if isinstance(item, Check):
        return item
    name, fn = item
    return Check(name, lambda _env: fn())


@dataclass
class Result:
    name: str
    ok: bool
    detail: str
    seconds: float
    applicable: bool = True
    lines: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "N/A" if not self.applicable else "PASS" if self.ok else "FAIL"


@dataclass
class Report:
    title: str
    checks: list[Result] = field(default_factory=list)  # the results, in the order the checks ran
    header: list[str] = field(default_factory=list)  # the config tested; what is emulated / real

    @property
    def ok(self) -> bool:
        return any(c.applicable for c in self.checks) and all(c.ok for c in self.checks)

    def render(self) -> str:
        width = max(len(c.name) for c in self.checks) if self.checks else 10
        lines = [self.title, "=" * len(self.title), *self.header]
        if self.header:
            lines.append("")
        for c in self.checks:
            lines.append(f"{c.status:<4}  {c.name.ljust(width)}  {c.seconds * 1000:7.0f} ms  {c.detail}")
            lines += [f"      {line}" for line in c.lines]
        lines.append(_summary(self.checks))
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps([{**asdict(c), "status": c.status} for c in self.checks], indent=2, default=str)


def _summary(results: list[Result]) -> str:
    passed = sum(c.ok and c.applicable for c in results)
    failed = sum(not c.ok for c in results)
    skipped = sum(not c.applicable for c in results)
    return f"{passed} passed, {failed} failed" + (f", {skipped} not applicable here" if skipped else "")


def run_checks(checks: Iterable[Check | NamedCheck], env: Any, report: Report) -> Report:
    """Run each check against ``env`` in order, into ``report``; a failed gate stops the list.
    Each check is printed once, by the report: while one runs, a terminal shows its name on one
    line that the next overwrites (nothing when stderr is not a terminal, e.g. in CI)."""
    try:
        for item in checks:
            c = as_check(item)
            result = run_one(c, env)
            report.checks.append(result)
            if c.gate and not result.ok:
                break
    finally:
        _running("")
    return report


def _running(name: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K{'  ... ' + name if name else ''}")
        sys.stderr.flush()


def run_one(c: Check, env: Any) -> Result:
    missing = sorted(c.needs - env.capabilities)
    if missing:
        off = [TURNED_OFF[m] for m in missing if m in TURNED_OFF]
        detail = off[0] if off else "not applicable: needs an environment that can " + "; ".join(missing)
        detail += "" if off else " (the emulator)"
        return Result(c.name, True, detail, 0.0, applicable=False)
    _running(c.name)
    started = time.monotonic()
    outcome = Outcome("")
    try:
        found = c.run(env)
        outcome, ok = (found if isinstance(found, Outcome) else Outcome(found)), True
    except Failed as exc:
        outcome, ok = Outcome(str(exc), exc.outcome.lines, exc.outcome.figures), False
    except NotApplicable as exc:
        outcome, ok = Outcome(f"uses what it does not declare: {exc}"), False
    except AssertionError as exc:
        outcome, ok = Outcome(str(exc) or "assertion failed"), False
    except Exception as exc:  # any error fails the check and the list carries on
        outcome, ok = Outcome(f"{type(exc).__name__}: {exc}"), False
    return Result(c.name, ok, outcome.detail, time.monotonic() - started, True, outcome.lines, outcome.figures)
