"""`npx cdk synth` runs cdk.json's `python3 app.py` with whatever python3 comes first on PATH: the
README's example must work without .venv activated, and print no jsii banner as raw bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.synth import REPO_ROOT

BAD_CONTEXT = {
    "mrk-toolkit:primaryRegion": "us-east-2",
    "mrk-toolkit:replicaRegions": "us-west-1",
    "mrk-toolkit:keyPendingWindowDays": "3",
}


def plain_python() -> str:
    """An interpreter outside .venv (the project's dependencies are not installed there)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def run_app(python: str, outdir: Path) -> subprocess.CompletedProcess[str]:
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    dropped = ("VIRTUAL_ENV", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(PATH=path, CDK_CONTEXT_JSON=json.dumps(BAD_CONTEXT), CDK_OUTDIR=str(outdir))
    return subprocess.run(
        [python, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_app_runs_under_the_venv_when_python3_lacks_the_cdk(tmp_path: Path) -> None:
    python = plain_python()
    probe = subprocess.run([python, "-c", "import aws_cdk"], capture_output=True, check=False)
    if probe.returncode == 0:
        pytest.fail(f"{python} has aws_cdk installed: this test needs an interpreter without it")
    result = run_app(python, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "No module named" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: Invalid config mrk-toolkit:keyPendingWindowDays=3: ")


def test_no_raw_jsii_banner_outside_make(tmp_path: Path) -> None:
    result = run_app(sys.executable, tmp_path)
    assert result.returncode == 2
    assert "b'!!" not in result.stderr and "end-of-life" not in result.stderr
