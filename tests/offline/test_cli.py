"""`python -m offline`, as a new user types it: every expected mistake is one line on stderr naming
the problem and the fix, a non-zero exit and no traceback; --debug shows the traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_src.record_crypto.settings import STORE_AURORA_POSTGRESQL
from offline.__main__ import main
from tests.infra.synth import REPO_ROOT

NO_CREDENTIALS = {
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={**base, **NO_CREDENTIALS, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_verify_without_credentials_is_one_line() -> None:
    result = run_cli("-m", "offline", "verify", "--primary", "us-east-2", "--replicas", "us-west-1")
    assert_one_line(result, "Unable to locate credentials", "aws configure", "make demo")


def test_debug_shows_the_traceback() -> None:
    result = run_cli("-m", "offline", "verify", "--primary", "us-east-2", "--replicas", "us-west-1", "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "NoCredentialsError" in result.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["demo", "-c", "mrk-toolkit:keyPendingWindowDays=3"], ["keyPendingWindowDays=3", "from 7 to 30"]),
        (["demo", "-c", "mrk-toolkit:replicaRegions=us-nowhere-1"], ["us-nowhere-1", "did you mean us-west-1"]),
        (["demo", "-c", "mrk-toolkit:replicaRegion=eu-west-1"], ["did you mean replicaRegions"]),
        (["demo", "-c", "replicaRegions"], ["-c expects key=value"]),
        (["demo", "-c", "mrk-tolkit:dataKeyCache=true"], ["'mrk-tolkit:dataKeyCache'", "mrk-toolkit:dataKeyCache?"]),
        (["demo", "--cdk-out", "/nonexistent/cdk.out"], ["/nonexistent/cdk.out does not exist", "make synth"]),
        (["demo", "--cdk-out", "cdk.out", "-c", "mrk-toolkit:algorithmSuite=committing-unsigned"], ["drop --cdk-out"]),
        (["demo", "--lag", "-1"], ["--lag", "0 to 30"]),
        (["demo", "--lag", "soon"], ["--lag", "number of seconds"]),
        (["demo", "--cdk-out", "a", "--synth-to", "b"], ["not allowed with"]),
        (["verify", "--primary", "us-east-2", "--replicas", "us-nowhere-1"], ["--replicas us-nowhere-1"]),
        (["verify", "--primary", "us-east-2", "--replicas", ","], ["names no region"]),
        (["verify", "--primary", "us-west-1"], ["--primary us-west-1 is also a replica region"]),
    ],
)
def test_mistakes_are_one_line(args: list[str], needles: list[str]) -> None:
    assert_one_line(run_cli("-m", "offline", *args), *needles)


def test_main_returns_the_exit_code_for_expected_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--cdk-out", str(tmp_path)]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err


def test_demo_passes_every_c_option_to_the_cdk_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo ARGS="-c ..."` goes through --synth-to: the CDK CLI gets every -c (and the demo
    the assembly it wrote); a failing synth is one line, not a traceback."""
    import offline.__main__ as cli

    calls: list[list[str]] = []

    def fake_run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, stderr="")  # stderr=PIPE, text=True: always a str

    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    pairs = ["mrk-toolkit:replicaRegions=us-west-1,eu-west-1", "mrk-toolkit:algorithmSuite=committing-unsigned"]
    argv = ["demo", "--synth-to", str(tmp_path), "--lag", "2", *(a for p in pairs for a in ("-c", p))]
    assert main(argv) == 2
    (command,) = calls
    assert command[1:6] == ["synth", "-q", "--no-notices", "-o", str(tmp_path)]
    assert command[6:] == ["-c", pairs[0], "-c", pairs[1]]


@pytest.mark.parametrize("command", ["demo", "up"])
def test_context_overrides_on_an_already_synthesized_assembly_are_refused(command: str, tmp_path: Path) -> None:
    """-c cannot change an assembly that exists: refused in one line, before anything starts."""
    result = run_cli("-m", "offline", command, "--cdk-out", str(tmp_path), "-c", "mrk-toolkit:replicaRegions=eu-west-1")
    assert_one_line(result, "cannot apply to --cdk-out", f"{command} then synthesizes with -c")


AURORA_C = ["-c", f"mrk-toolkit:store={STORE_AURORA_POSTGRESQL}"]


@pytest.mark.parametrize(
    "store_args",
    [AURORA_C, ["--store", STORE_AURORA_POSTGRESQL]],
    ids=["store-from-the-config", "store-flag"],
)
def test_drill_with_the_aurora_store_runs_the_failover_drills(
    store_args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make drill ARGS="-c mrk-toolkit:store=aurora-postgresql"` and `drill --store aurora-postgresql` alike."""
    import offline.__main__ as cli

    ran: list[dict[str, object]] = []

    class Report:
        ok = True

        def render(self) -> str:
            return "failover drills ran"

    def failover_drill(cdk_out: Path | None, overrides: dict[str, object]) -> Report:
        ran.append({"cdk_out": cdk_out, **overrides})
        return Report()

    monkeypatch.setattr(cli, "_failover_drill", failover_drill)
    assert main(["drill", *store_args, "-c", "mrk-toolkit:replicaRegions=us-west-1"]) == 0
    assert ran == [
        {
            "cdk_out": None,
            "mrk-toolkit:store": STORE_AURORA_POSTGRESQL,
            "mrk-toolkit:replicaRegions": "us-west-1",
        }
    ]
    assert "failover drills ran" in capsys.readouterr().out


def test_drill_refuses_region_with_the_aurora_store() -> None:
    result = run_cli("-m", "offline", "drill", "--region", "us-west-1", *AURORA_C)
    assert_one_line(result, "--region us-west-1", "failover drills move the primary themselves", "drop --region")
