"""The region outage drill: every step of the README's "Region outage runbook", run on the
emulator, in order, each a small named check.

One region goes down (by default the primary: the MRK primary and the table stack's home, the
harder case). The drill counts every write that got a success reply (acknowledged) and, after
the region returns, reads each one in every region, the recovered one included: a record that
does not come back and decrypt is LOST, and the drill fails.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from cli_support import UsageError
from lambda_src.record_crypto.settings import ENV_MRK_ARN
from offline.runbooks.outage import (
    ONE_ATTEMPT,
    drift_line,
    key_drift,
    promote_key,
    stack_needs,
    stack_plan,
)
from offline.runbooks.rotation import rotate
from offline.verification.basics import read_until_replicated
from offline.verification.checks import Capability, Check, Report, check, run_checks
from offline.verification.emulated import EmulatedEnvironment

PARTIAL_OUTAGE = ("dynamodb", "lambda")  # KMS answers again; DynamoDB (its streams too) and Lambda are still down


@dataclass
class Ledger:
    """What the writers were told: id -> (version, record) of every acknowledged write."""

    acked: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    acked_during_outage: int = 0
    refused: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # acknowledged in the down region, not replicated before it
    lost: list[str] = field(default_factory=list)


class OutageDrill:
    def __init__(
        self,
        env: EmulatedEnvironment,
        *,
        down: str | None = None,
        writes: int = 3,
        deadline_s: float = 30.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.env = env
        self.down = down or env.primary_region
        regions = (env.primary_region, *env.replica_regions)
        if self.down not in regions:
            raise UsageError(f"--region {self.down}: not a region of the deployment ({', '.join(regions)})")
        self.healthy = tuple(r for r in regions if r != self.down)
        self.regions = regions
        self.writes = writes
        self.deadline_s = deadline_s
        self.say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        self.ledger = Ledger()
        self.tag = uuid.uuid4().hex[:6]
        writer = env.deployment.function(env.primary_region, "writer")
        self.prefix = writer.stack.removesuffix(f"-Functions-{env.primary_region}")  # the stackPrefix
        self.numbers: dict[str, float] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _record(self, label: str) -> dict[str, Any]:
        return {"name": f"drill {label}", **{f: f"SECRET-{f}-{self.tag}-{label}" for f in self.env.sensitive_fields}}

    def _write(self, region: str, item_id: str, during_outage: bool = False) -> dict[str, Any]:
        record = self._record(f"{item_id}-{time.monotonic_ns()}")
        result = self.env.invoke(region, "writer", {"id": item_id, "record": record}).result
        if result.get("ok") is True:
            self.ledger.acked[item_id] = (int(result["version"]), record)
            self.ledger.acked_during_outage += during_outage
        return result

    def _outage(self, region: str, *, down: bool, services: tuple[str, ...] = ()) -> None:
        self.env.outage(region, down=down, services=services)

    def _promote(self, to_region: str) -> str:
        return promote_key(self._client, stack_prefix=self.prefix, to_region=to_region, home_region=self.home)

    @property
    def home(self) -> str:
        return self.env.primary_region

    def _client(self, service: str, region: str, session: Any = None) -> Any:
        return (session or self.env.aws.session).client(
            service, region_name=region, endpoint_url=self.env.aws.endpoint_url, config=ONE_ATTEMPT
        )

    def _answers(self, service: str, region: str, call: Callable[[Any], Any]) -> bool:
        try:
            call(self._client(service, region))
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 503:
                return False
            raise
        return True

    # -- the runbook, step by step ---------------------------------------------------------------
    def checks(self) -> list[Check]:
        """The runbook's steps, in order: each a check that takes the region down or needs it down."""
        d, h = self.down, ", ".join(self.healthy)
        steps = [
            (f"before: records written in {d} are acknowledged and replicated", self.baseline),
            (f"outage: every endpoint of {d} fails (503)", self.start_outage),
            (f"refused: writes in {d} fail with a clear error and are not acknowledged", self.writes_refused),
            (f"automatic: {h} keep taking writes and serving reads", self.healthy_regions_serve),
            (f"queued: changes toward {d} wait for it, none is dropped", self.changes_queued),
            (f"CloudFormation: what can and cannot be updated while {d} is down", self.cloudformation),
        ]
        if self.down == self.home:
            steps += [
                (f"no promotion: the key's primary cannot move while KMS in {d} is down", self.promotion_impossible),
                (f"promote: KMS in {d} answers again; only a key administrator moves the primary", self.promote),
            ]
        steps += [
            (f"recovery: {d} returns and replication catches up", self.recover),
            ("verify: no acknowledged record is lost, each decrypts in every region", self.verify_none_lost),
            ("reconcile: the key's primary is back where the templates declare it", self.reconcile),
        ]
        return [check(name, step, Capability.OUTAGES, Capability.HOLD_REPLICATION) for name, step in steps]

    def run(self) -> Report:
        report = Report(f"Region outage drill: {self.down} down, {', '.join(self.healthy)} healthy")
        try:  # a failed step is reported; the drill carries on to recover
            run_checks(self.checks(), self.env, report)
        finally:
            self._outage(self.down, down=False)  # whatever happened, the region comes back
        led = self.ledger
        report.header = [
            f"acknowledged writes: {len(led.acked)} ({led.acked_during_outage} during the outage); "
            f"refused in {self.down}: {len(led.refused)}; LOST after recovery: {len(led.lost)}",
        ]
        return report

    def baseline(self, env: EmulatedEnvironment) -> str:
        for i in range(self.writes):
            result = self._write(self.down, f"drill-{self.tag}-before-{i}")
            assert result.get("ok") is True, f"write in {self.down} before the outage failed: {str(result)[:200]}"
        self._read_everywhere(self.healthy, ids=list(self.ledger.acked))
        healthy = ", ".join(self.healthy)
        return f"{len(self.ledger.acked)} records written in {self.down}, read and decrypted in {healthy}"

    def start_outage(self, env: EmulatedEnvironment) -> str:
        last = self._write(self.down, f"drill-{self.tag}-last-second")  # acknowledged, not yet replicated
        assert last.get("ok") is True, f"write in {self.down} just before the outage: {str(last)[:200]}"
        self.ledger.held.append(last["id"])
        self._outage(self.down, down=True)
        writer = env.deployment.function(self.down, "writer").name
        lambda_answers = self._answers("lambda", self.down, lambda c: c.get_function_configuration(FunctionName=writer))
        assert not lambda_answers, f"Lambda in {self.down} still answers"
        assert not self._answers("cloudformation", self.down, lambda c: c.describe_stacks())
        assert self._answers("cloudformation", self.healthy[0], lambda c: c.describe_stacks())
        return (
            f"the Lambda and CloudFormation endpoints of {self.down} answer 503; {self.healthy[0]}'s answer; one "
            f"write acknowledged in {self.down} just before, not yet replicated"
        )

    def writes_refused(self, env: EmulatedEnvironment) -> str:
        seen, message = set(), ""
        for i in range(2):
            item_id = f"drill-{self.tag}-refused-{i}"
            result = self._write(self.down, item_id)
            error = result.get("error") or {}
            assert result.get("ok") is not True, f"a write in {self.down} was acknowledged during its outage"
            assert (error.get("type"), error.get("retryable")) == ("Unavailable", True), str(result)[:300]
            assert self.down in error.get("message", ""), error
            self.ledger.refused.append(item_id)
            seen.add(f"{error['type']} {error['status']}")
            message = error["message"]
        return f"{len(self.ledger.refused)} writes refused: {', '.join(sorted(seen))} ({message[:90]}...)"

    def healthy_regions_serve(self, env: EmulatedEnvironment) -> str:
        before = list(self.ledger.acked)
        for region in self.healthy:
            for i in range(self.writes):
                result = self._write(region, f"drill-{self.tag}-{region}-{i}", during_outage=True)
                assert result.get("ok") is True, f"write in {region} during the outage: {str(result)[:200]}"
            updated = self._write(region, before[0], during_outage=True)  # a newer version of an older record
            assert updated.get("ok") is True, f"update in {region} during the outage: {str(updated)[:200]}"
        readable = [i for i in self.ledger.acked if i not in self.ledger.held]
        self._read_everywhere(self.healthy, ids=readable)
        return (
            f"{self.ledger.acked_during_outage} writes acknowledged in {', '.join(self.healthy)} during the outage "
            f"(one an update of a record from before); {len(readable)} records read and decrypted there (the "
            f"{len(self.ledger.held)} held in {self.down} waits for it)"
        )

    def changes_queued(self, env: EmulatedEnvironment) -> str:
        replication = env.replication
        assert replication is not None, "no replication emulator"
        time.sleep(replication.lag_seconds + 0.5)  # their delivery is due: they must wait, not vanish
        waiting = replication.pending_toward()[self.down]
        assert waiting >= self.ledger.acked_during_outage, f"only {waiting} changes wait for {self.down}"
        assert not replication.errors, replication.errors[:3]
        self.numbers["queued_toward_down"] = waiting
        return f"{waiting} changes wait for {self.down} (PendingReplicationCount), {replication.deferred} deferrals"

    def cloudformation(self, env: EmulatedEnvironment) -> str:
        assembly = env.deployment.assembly
        plan = stack_plan(assembly, [self.down])
        can = [line.split()[2] for line in plan if line.startswith("CAN ")]
        cannot = [line.split()[2] for line in plan if line.startswith("CANNOT ")]
        table = next(s.name for s in assembly.stacks.values() if s.resources("AWS::DynamoDB::GlobalTable"))
        assert table in cannot, f"the plan lets {table} be updated while {self.down} is down"
        for region in self.healthy:
            functions = next(s for s in can if s.startswith(f"{self.prefix}-Functions-") and s.endswith(region))
            assert functions, f"the functions stack of {region} cannot be updated: {plan}"
        for name in (*can, *cannot):  # the plan agrees with what the emulated CloudFormation answers
            needs = stack_needs(assembly, name).needs
            answering = {r: self._answers("cloudformation", r, lambda c: c.describe_stacks()) for r in needs}
            assert all(answering.values()) == (name in can), f"{name}: plan {name in can}, answers {answering}"
        return f"CAN update {', '.join(can)}; CANNOT update {', '.join(cannot)} (python -m offline stack-plan)"

    def promotion_impossible(self, env: EmulatedEnvironment) -> str:
        try:
            self._promote(self.healthy[0])
        except UsageError as refused:
            assert "did not answer UpdatePrimaryRegion" in str(refused), refused
            return f"refused: {str(refused)[:150]}..."
        raise AssertionError(f"the primary moved to {self.healthy[0]} while KMS in {self.down} was down")

    def promote(self, env: EmulatedEnvironment) -> str:
        target = self.healthy[0]
        self._outage(self.down, down=True, services=PARTIAL_OUTAGE)
        primary_arn = env.deployment.function(self.home, "writer").environment[ENV_MRK_ARN]
        refused = []
        for kind in ("writer", "reader"):
            role = env.deployment.function(target, kind).role_arn
            kms = self._client("kms", self.home, env.aws.role_session(role))
            try:
                kms.update_primary_region(KeyId=primary_arn, PrimaryRegion=target)
            except ClientError as error:
                assert error.response["Error"]["Code"] == "AccessDeniedException", error
                refused.append(kind)
            else:
                raise AssertionError(f"the {kind} role of {target} moved the primary of the key")
        done = self._promote(target)
        result = self._write(target, f"drill-{self.tag}-after-promotion", during_outage=True)
        assert result.get("ok") is True, f"write in {target} after the promotion: {str(result)[:200]}"
        return f"the {' and '.join(refused)} roles: AccessDenied; the administrator {done[:200]}"

    def recover(self, env: EmulatedEnvironment) -> str:
        replication = env.replication
        assert replication is not None, "no replication emulator"
        started = time.monotonic()
        self._outage(self.down, down=False)
        while replication.pending() and time.monotonic() - started < self.deadline_s:
            time.sleep(0.1)
        caught_up = time.monotonic() - started
        assert not replication.pending(), f"{replication.pending_toward()} changes still pending after {caught_up:.1f}s"
        assert not replication.errors, replication.errors[:3]
        self.numbers["catch_up_s"] = round(caught_up, 2)
        return f"{self.down} answers; replication caught up in {caught_up:.1f}s (nothing pending toward any region)"

    def verify_none_lost(self, env: EmulatedEnvironment) -> str:
        lost = self.ledger.lost
        for item_id, (version, record) in sorted(self.ledger.acked.items()):
            for region in self.regions:
                try:
                    inv = read_until_replicated(env, region, item_id, min_version=version, deadline_s=self.deadline_s)
                    ok = inv.result.get("ok") is True and (inv.result["version"], inv.result["record"]) == (
                        version,
                        record,
                    )
                except AssertionError:
                    ok = False
                if not ok:
                    lost.append(f"{item_id}@{region}")
        assert not lost, f"LOST {len(lost)} acknowledged record(s): {', '.join(lost[:5])}"
        for item_id in self.ledger.refused:
            for region in self.regions:
                error = env.invoke(region, "reader", {"id": item_id}).result.get("error") or {}
                assert error.get("type") == "NotFound", f"refused write {item_id} found in {region}: {error}"
        reads = len(self.ledger.acked) * len(self.regions)
        return (
            f"{len(self.ledger.acked)} acknowledged records x {len(self.regions)} regions = {reads} reads, each "
            f"decrypted at its acknowledged version; lost: 0; the {len(self.ledger.refused)} refused writes exist "
            "nowhere"
        )

    def reconcile(self, env: EmulatedEnvironment) -> str:
        lines: list[str] = []
        actual, line = key_drift(self._client, stack_prefix=self.prefix, region=self.home, home_region=self.home)
        if actual != self.home:
            lines.append(line.split(";")[0])
            lines.append(self._promote(self.home))
        else:
            lines.append(drift_line(actual, self.home))
        key_arn = env.deployment.function(self.home, "writer").environment[ENV_MRK_ARN]
        lines.append(rotate(self._client("kms", self.home), key_arn).split(";")[0])  # a primary-only operation
        self._read_everywhere(self.regions, ids=sorted(self.ledger.acked))
        return " / ".join(lines)

    def _read_everywhere(self, regions: tuple[str, ...], *, ids: list[str]) -> None:
        for item_id in ids:
            version, record = self.ledger.acked[item_id]
            for region in regions:
                inv = read_until_replicated(self.env, region, item_id, min_version=version, deadline_s=self.deadline_s)
                assert inv.result.get("ok") is True, f"{item_id} in {region}: {str(inv.result)[:200]}"
                assert inv.result["record"] == record, f"{item_id} read in {region} differs from what was written"
