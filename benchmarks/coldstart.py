"""Section 3: cold start. The zipped size of the deployable function code, and the import time of
what the handlers import, each in a fresh interpreter, against ``import boto3`` measured the same way."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.moto_env import LAMBDA_SRC, REPO
from lambda_src.record_crypto.settings import ENV_MRK_ARN, ENV_REGION, ENV_SENSITIVE_FIELDS, ENV_TABLE_NAME

BUNDLE_TARGET_MB = 6.0
IMPORT_TARGET_RATIO = 2.0
# A valid function environment (writer.py validates it at import, as the Lambda runtime would).
FAKE_FUNCTION_ENV = {
    ENV_REGION: "us-east-2",
    ENV_TABLE_NAME: "t-records",
    ENV_MRK_ARN: "arn:aws:kms:us-east-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    ENV_SENSITIVE_FIELDS: "ssn",
    "AWS_EC2_METADATA_DISABLED": "true",
}
BOTO3 = "boto3"
SERVICE = "record_crypto.service"
# The handler modules Lambda imports (the function's `handler` setting): the target is measured on
# these, cold-start init included, since that is what a cold start pays before the first event.
HANDLERS = ("writer", "reader")
# (module, what it stands for); the first is the reference, the handlers are the target.
IMPORTS = (
    (BOTO3, "`import boto3` alone (the reference)"),
    ("writer", "`import writer`: the writer's handler module (imports + cold-start init: env, clients)"),
    ("reader", "`import reader`: the reader's handler module (imports + cold-start init: env, clients)"),
    (SERVICE, "`import record_crypto.service` alone (the handlers' import, without their init)"),
    ("aws_encryption_sdk", "`import aws_encryption_sdk` alone (the largest part of it)"),
)
NO_PYC_IMPORTS = (BOTO3, *HANDLERS)
_PROBE = (
    "import sys, time; sys.path.insert(0, sys.argv[1]); started = time.perf_counter(); "
    "__import__(sys.argv[2]); print(time.perf_counter() - started)"
)


@dataclass
class ColdStartResults:
    bundle_zip_bytes: int = 0
    bundle_raw_bytes: int = 0
    bundle_files: int = 0
    bundle_seconds: float = 0.0
    largest: list[tuple[str, int]] = field(default_factory=list)  # top-level entry -> zipped bytes
    runs: int = 0
    import_ms: dict[str, list[float]] = field(default_factory=dict)
    no_pyc_ms: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def bundle_mb(self) -> float:
        return self.bundle_zip_bytes / 1_000_000

    def median(self, module: str, *, no_pyc: bool = False) -> float:
        return statistics.median((self.no_pyc_ms if no_pyc else self.import_ms)[module])

    def ratio(self, module: str, *, no_pyc: bool = False) -> float:
        return self.median(module, no_pyc=no_pyc) / self.median(BOTO3, no_pyc=no_pyc)

    def slowest_handler(self, *, no_pyc: bool = False) -> str:
        """The handler module whose import the target is judged on (the slower of the two)."""
        return max(HANDLERS, key=lambda module: self.median(module, no_pyc=no_pyc))


def _bundle(results: ColdStartResults, workdir: Path) -> None:
    out = workdir / "bundle"
    started = time.perf_counter()
    # In a subprocess: lambda_bundle imports aws_cdk (a jsii/node runtime) that this process does not need.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from cdk_constructs.lambda_bundle import build_bundle; "
            "build_bundle(Path(sys.argv[1]))",
            str(out),
        ],
        cwd=REPO,
        check=True,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
    )
    results.bundle_seconds = time.perf_counter() - started
    archive = workdir / "bundle.zip"
    by_top: dict[str, int] = {}
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            rel = path.relative_to(out).as_posix()
            zf.write(path, rel)
            results.bundle_raw_bytes += path.stat().st_size
            results.bundle_files += 1
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            top = info.filename.split("/", 1)[0]
            top = top.split("-", 1)[0] if top.endswith((".dist-info", ".libs")) else top
            by_top[top] = by_top.get(top, 0) + info.compress_size
    results.bundle_zip_bytes = archive.stat().st_size
    results.largest = sorted(by_top.items(), key=lambda kv: -kv[1])[:5]


def _import_once(module: str, env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(LAMBDA_SRC), module],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip().splitlines()[-1]) * 1000


def run(*, runs: int, say: Callable[[str], None]) -> ColdStartResults:
    started = time.perf_counter()
    results = ColdStartResults(runs=runs)
    with tempfile.TemporaryDirectory(prefix="mrk-bench-bundle-") as tmp:
        say("  building the function bundle (pip wheels cached in .bundle-cache) ...")
        _bundle(results, Path(tmp))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
        env = {**base_env, **FAKE_FUNCTION_ENV}
        say(f"  import times, {runs} fresh interpreters per module ...")
        for module, _ in IMPORTS:
            _import_once(module, env)  # writes the bytecode cache, so every timed run finds it
        results.import_ms = {module: [] for module, _ in IMPORTS}
        for _ in range(runs):  # interleaved, so drift hits every module alike
            for module, _ in IMPORTS:
                results.import_ms[module].append(_import_once(module, env))
        # No bytecode cache at all (an empty PYTHONPYCACHEPREFIX, nothing written): every module compiles.
        results.no_pyc_ms = {module: [] for module in NO_PYC_IMPORTS}
        no_pyc_env = {**env, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "empty-pycache"), "PYTHONDONTWRITEBYTECODE": "1"}
        for _ in range(max(3, runs // 2)):
            for module in NO_PYC_IMPORTS:
                results.no_pyc_ms[module].append(_import_once(module, no_pyc_env))
    results.seconds = time.perf_counter() - started
    return results
