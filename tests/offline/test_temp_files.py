"""A run leaves nothing in the temporary directory (the synthesized assembly, the functions' logs,
the custom resources' logs and the PostgreSQL servers' dirs are removed), and the demo prints each
check once: the report's line, no progress copy of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_the_demo_leaves_no_temp_file_and_prints_each_check_once(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "offline", "demo", "--lag", "0.3"],  # synthesizes in-process, into a temp dir
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in temp.iterdir()) == [], "left in the temp dir"
    passed = [line.split("  ")[1].strip() for line in done.stdout.splitlines() if line.startswith("PASS  ")]
    assert "reader decrypts in us-west-1 after replication" in passed
    output = done.stdout + done.stderr
    for name in passed:
        assert output.count(name) == 1, f"printed more than once: {name}"
