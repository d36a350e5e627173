"""Section 4: ``cdk synth`` (the pinned CLI, as a user runs it) for 2, 4 and 8 regions against a
one-stack app synthesized the same way: wall time, peak memory, and the deploy waves."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.moto_env import REPO

PRIMARY = "us-east-2"
REPLICA_POOL = (
    "us-west-1",
    "eu-west-1",
    "ap-southeast-2",
    "eu-central-1",
    "ap-northeast-1",
    "us-west-2",
    "ca-central-1",
)
REGION_COUNTS = (2, 4, 8)
ONE_STACK = "one-stack"
CDK = REPO / "node_modules" / ".bin" / "cdk"
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# Runs the command and reports the largest resident set of any process it waited for (kernel hiwater).
_WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)"
)


@dataclass
class SynthConfig:
    name: str
    regions: tuple[str, ...]
    seconds: list[float] = field(default_factory=list)
    tree_peak_mb: list[float] = field(default_factory=list)
    largest_process_mb: list[float] = field(default_factory=list)
    stacks: int = 0
    depth: int = 0
    width: int = 0
    template_bytes: int = 0

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_mb(self) -> float:
        return max(self.tree_peak_mb)


@dataclass
class SynthResults:
    configs: list[SynthConfig]
    repeats: int
    warmed_up: bool
    cli_version: str = ""
    seconds: float = 0.0

    def by_name(self, name: str) -> SynthConfig:
        return next(c for c in self.configs if c.name == name)


def _tree(root: int) -> tuple[float, float]:
    """(sum, max) of the resident set of ``root``'s descendants, in MB, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * _PAGE_KB
    total, largest, stack = 0, 0, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        largest = max(largest, rss.get(pid, 0))
        stack.extend(children.get(pid, []))
    return total / 1024, largest / 1024


def _env() -> dict[str, str]:
    venv_bin = REPO / ".venv" / "bin"
    bin_dir = venv_bin if venv_bin.is_dir() else Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            # cdk.json's app is "python3 app.py": the venv's python3 must come first.
            "PATH": f"{bin_dir}{os.pathsep}{CDK.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "AWS_EC2_METADATA_DISABLED": "true",
            "CDK_DISABLE_VERSION_CHECK": "true",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        }
    )
    return env


def command(config: SynthConfig, outdir: Path) -> list[str]:
    cmd = [str(CDK), "synth", "-q", "-o", str(outdir)]
    if config.name == ONE_STACK:
        return [*cmd, "--app", f"python3 {REPO / 'benchmarks' / 'one_stack_app.py'}"]
    return [
        *cmd,
        "-c",
        f"mrk-toolkit:primaryRegion={config.regions[0]}",
        "-c",
        f"mrk-toolkit:replicaRegions={','.join(config.regions[1:])}",
    ]


def _synth_once(config: SynthConfig, workdir: Path, run: int) -> Path:
    outdir = workdir / f"{config.name}-{run}"
    maxrss_file = workdir / f"{config.name}-{run}.maxrss"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, str(maxrss_file), *command(config, outdir)],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree(proc.pid)[0])
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"cdk synth for {config.name} failed ({proc.returncode}):\n{output.decode()[-3000:]}")
    config.seconds.append(elapsed)
    config.tree_peak_mb.append(peak[0])
    config.largest_process_mb.append(int(maxrss_file.read_text()) / 1024)
    return outdir


def _describe(config: SynthConfig, outdir: Path) -> None:
    from cloud_assembly.reader import load_assembly

    assembly = load_assembly(outdir)
    waves = assembly.waves()
    config.stacks = len(assembly.stacks)
    config.depth = len(waves)
    config.width = max(len(w) for w in waves)
    config.template_bytes = sum(p.stat().st_size for p in outdir.glob("*.template.json"))


def _cli_version() -> str:
    done = subprocess.run([str(CDK), "--version"], env=_env(), capture_output=True, text=True, check=False)
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown"


def run(*, repeats: int, warm_up: bool, say: Callable[[str], None]) -> SynthResults:
    started = time.perf_counter()
    configs = [SynthConfig(ONE_STACK, (PRIMARY,))]
    configs += [SynthConfig(f"{n} regions", (PRIMARY, *REPLICA_POOL[: n - 1])) for n in REGION_COUNTS]
    results = SynthResults(configs=configs, repeats=repeats, warmed_up=warm_up, cli_version=_cli_version())
    say("  warming the pip wheel cache (.bundle-cache) so bundling is a file copy ...")
    subprocess.run(
        [sys.executable, "-c", "from cdk_constructs.lambda_bundle import install_dependencies as i; i()"],
        cwd=REPO,
        env=_env(),
        check=True,
    )
    with tempfile.TemporaryDirectory(prefix="mrk-bench-synth-") as tmp:
        workdir = Path(tmp)
        if warm_up:
            say("  warm-up synth (not timed) ...")
            scratch = SynthConfig("warm-up", configs[1].regions)
            _synth_once(scratch, workdir, 0)
        for run_no in range(repeats):
            for config in configs:
                say(f"  cdk synth {config.name} (run {run_no + 1}/{repeats}) ...")
                outdir = _synth_once(config, workdir, run_no)
                if run_no == 0:
                    _describe(config, outdir)
    results.seconds = time.perf_counter() - started
    return results
