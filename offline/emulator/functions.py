"""Run the real handlers on the emulator, one warm process per function, under its role."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from offline.emulator.deployment import Deployment, FunctionSpec
from offline.emulator.network import RESOLVER_DIR_ENV
from offline.emulator.server import EmulatedAws

PROVIDER_FRAMEWORK_HANDLER = "framework.onEvent"  # the CDK provider framework's onEvent (Node.js)
CUSTOM_RESOURCE_HANDLERS = ("db_setup.handler",)  # run by the provisioner (aurora.py), not served

REPO_ROOT = Path(__file__).resolve().parents[2]


class FunctionError(RuntimeError):
    pass


class Retired(RuntimeError):
    """The instance was stopped by a stack update (its function changed or was deleted): Lambda sends the
    next invocation to an instance of the new version (FunctionHost.invoke does)."""


class EmulatedFunction:
    """A warm function instance: the handler is imported once, then invoked many times."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        role_arn: str,
        credentials: dict[str, str],
        account: str,
        endpoint_url: str,
        log_dir: Path,
        resolver_dir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.role_arn = role_arn
        self.log_path = log_dir / f"{spec.region}-{spec.kind}-as-{role_arn.rsplit('/', 1)[1]}.log"
        env = {
            "PATH": os.environ.get("PATH", ""),
            # The repository (the emulator's own modules) and lambda_src, the root of the function code as
            # Lambda's /var/task is (the handlers are top-level modules there).
            "PYTHONPATH": os.pathsep.join((str(REPO_ROOT), str(REPO_ROOT / "lambda_src"))),
            "PYTHONUNBUFFERED": "1",
            **spec.environment,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group or "",
            "MRK_TOOLKIT_FUNCTION_ARN": spec.arn,
            "MRK_TOOLKIT_HANDLER": spec.handler,
            "MRK_TOOLKIT_ACCOUNT": account,
            # The function's VPC resolver (the global writer endpoint's name): offline/emulator/network.py.
            **({RESOLVER_DIR_ENV: str(resolver_dir)} if resolver_dir is not None else {}),
        }
        self._log = self.log_path.open("w")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "offline.emulator.worker"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        # One invocation at a time per instance (as Lambda), and a stack update waits for the one in flight.
        self._lock = threading.RLock()
        self.init_ms: float | None = None
        self.retired = False

    def _read_line(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            raise FunctionError(
                f"{self.spec.name}: no answer within {timeout:.0f}s; see {self.log_path}:\n{self.log_tail()}"
            )
        return json.loads(result[0])

    def wait_ready(self) -> None:
        with self._lock:
            if self.init_ms is None:
                self.init_ms = self._read_line(60)["init_ms"]

    def invoke(self, event: Any) -> dict[str, Any]:
        with self._lock:
            if self.retired:
                raise Retired(self.spec.name)
            self.wait_ready()
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({"event": event}) + "\n")
            self._proc.stdin.flush()
            return self._read_line(self.spec.timeout + 30)

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def retire(self) -> None:
        """Stop once the invocation in flight (if any) has answered; later invocations raise Retired."""
        with self._lock:
            self.retired = True
            self.stop()

    def stop(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._log.close()


class FunctionHost:
    """Starts every function of a deployment under its own role; runs them on request."""

    def __init__(self, aws: EmulatedAws, deployment: Deployment, log_dir: Path | None = None) -> None:
        self.aws = aws
        self.endpoint_url = aws.endpoint_url
        self.deployment = deployment
        # Without a log_dir the logs go to a temp dir that stop() removes (the run leaves nothing in /tmp).
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="mrk-toolkit-functions-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._instances: dict[tuple[str, str, str], EmulatedFunction] = {}
        self._lock = threading.Lock()  # the instances map: invocations run while a stack update syncs it
        self.seen_contexts: dict[str, dict[str, str]] = {}  # KMS action -> last allowed context

    def instance(self, region: str, kind: str, *, as_role_of: str | None = None) -> EmulatedFunction:
        """The function ``kind`` of ``region``; with ``as_role_of`` its code runs under the role
        of another function (a negative check: e.g. the writer's code with the reader's role)."""
        spec = self.deployment.function(region, kind)
        role_arn = self.deployment.function(region, as_role_of).role_arn if as_role_of else spec.role_arn
        key = (region, kind, role_arn)
        with self._lock:
            if key not in self._instances:
                self._instances[key] = EmulatedFunction(
                    spec,
                    role_arn=role_arn,
                    credentials=self.aws.credentials_for(role_arn),
                    account=self.deployment.account,
                    endpoint_url=self.endpoint_url,
                    log_dir=self.log_dir,
                    resolver_dir=self._resolver_dir(spec),
                )
            return self._instances[key]

    def _resolver_dir(self, spec: FunctionSpec) -> Path | None:
        aurora = self.deployment.aurora
        return aurora.network.resolver_dir(spec.name) if aurora is not None else None

    def start_all(self) -> None:
        """Every function the deployment serves; not the custom resources' handlers (CloudFormation
        runs those during a deployment, offline/emulator/aurora.py)."""
        for spec in self.deployment.functions:
            if spec.handler not in (PROVIDER_FRAMEWORK_HANDLER, *CUSTOM_RESOURCE_HANDLERS):
                self.instance(spec.region, spec.kind)
        with self._lock:
            instances = list(self._instances.values())
        for inst in instances:
            inst.wait_ready()

    def sync(self) -> None:
        """Follow a changed deployment: stop the instances of functions that were deleted or
        changed (their spec is gone), start the new ones. An invocation in flight on an old instance
        finishes there (as on Lambda); the next goes to the new version's instance."""
        with self._lock:
            gone = [
                self._instances.pop(key)
                for key, inst in list(self._instances.items())
                if not any(inst.spec is spec for spec in self.deployment.functions)
            ]
        for inst in gone:
            inst.retire()
        self.start_all()

    def invoke(self, region: str, kind: str, event: Any, *, as_role_of: str | None = None) -> dict[str, Any]:
        while True:
            try:
                reply = self.instance(region, kind, as_role_of=as_role_of).invoke(event)
                break
            except Retired:
                continue  # a stack update replaced it meanwhile: the new version's instance answers
        for call in reply.get("calls", []):
            if call.get("allowed") and call.get("context"):
                self.seen_contexts[call["action"]] = call["context"]
        return reply

    def logs(self) -> dict[str, str]:
        return {str(inst.log_path.name): inst.log_text() for inst in self._instances.values()}

    def logs_by_region(self) -> dict[str, str]:
        """What each region's log groups would hold: the logs of the functions running under their
        own role (not the negative checks' code-under-another-role instances)."""
        out: dict[str, str] = {}
        for (region, _kind, role_arn), inst in self._instances.items():
            if role_arn == inst.spec.role_arn:
                out[region] = out.get(region, "") + inst.log_text()
        return out

    def stop(self) -> None:
        for inst in self._instances.values():
            inst.stop()
        if self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)
