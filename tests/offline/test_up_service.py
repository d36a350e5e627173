"""`python -m offline up` as a service: started in the background with stdin closed it stays up,
its env file sources in a shell and an ordinary boto3 client reaches it, and SIGTERM stops it
cleanly (one "stopped" line, exit 0). A taken port is one line naming --port; a python without
aws_cdk re-runs the command under .venv."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

import offline.__main__ as cli
from lambda_src.record_crypto.settings import (
    DISCOVERY_PARAMETERS,
    PARAM_RECORD_KEY_ARN,
    PARAM_TABLE_NAME,
    discovery_path,
)
from tests.infra.synth import REPO_ROOT
from tests.offline.test_cli import assert_one_line, run_cli


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sourced(env_file: Path) -> dict[str, str]:
    """The variables a shell has after `source env_file` (and nothing else of this process's AWS_*)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        ["bash", "-c", 'source "$1" && env -0', "bash", str(env_file)],
        env=base,
        capture_output=True,
        check=True,
    )
    pairs = (entry.split("=", 1) for entry in done.stdout.decode().split("\0") if "=" in entry)
    return {name: value for name, value in pairs if name.startswith("AWS_")}


@contextlib.contextmanager
def up_in_background(
    command: list[str], env_file: Path, out: Path, *, stderr: int | None, timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m offline up`` (``command``) as a user runs it in the background, its output in ``out``,
    yielded once it has written ``env_file``; killed afterwards if the caller did not stop it."""
    with out.open("w") as stdout:
        up = subprocess.Popen(
            [sys.executable, *command, "--env-file", str(env_file)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + timeout
        while not env_file.exists() and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert env_file.exists(), f"no env file; exit code {up.poll()}; output: {out.read_text()}"
        yield up
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


@pytest.mark.e2e
def test_up_in_the_background_serves_until_sigterm(default_assembly: Path, tmp_path: Path) -> None:
    port, env_file, out = _free_port(), tmp_path / "up.env", tmp_path / "up.out"
    command = ["-m", "offline", "up", "--cdk-out", str(default_assembly), "--port", str(port)]
    with up_in_background(command, env_file, out, stderr=subprocess.DEVNULL, timeout=240) as up:
        time.sleep(1)
        assert up.poll() is None, "up stays up with its stdin closed"
        env = _sourced(env_file)
        assert env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
        session = boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        cloudformation = session.client("cloudformation", endpoint_url=env["AWS_ENDPOINT_URL"])
        stacks = {s["StackName"] for s in cloudformation.describe_stacks()["Stacks"]}
        assert "MrkToolkit-Functions-us-east-2" in stacks, stacks
        _assert_discovery_served(session, env["AWS_ENDPOINT_URL"])
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, out.read_text()
    printed = out.read_text().splitlines()
    assert printed[-1] == "offline up: stopped (SIGTERM): the emulated deployment is gone", printed
    assert f"# the exports above are also in {env_file}: source {env_file}" in printed


def _assert_discovery_served(session: boto3.Session, endpoint: str) -> None:
    """Each region's discovery parameters are there (the provisioner created AWS::SSM::Parameter)."""
    for region in ("us-east-2", "us-west-1"):
        path = discovery_path("MrkToolkit", region)
        ssm = session.client("ssm", region_name=region, endpoint_url=endpoint)
        got = {p["Name"]: p["Value"] for p in ssm.get_parameters_by_path(Path=path)["Parameters"]}
        assert set(got) == {f"{path}/{name}" for name in DISCOVERY_PARAMETERS}, got
        assert got[f"{path}/{PARAM_RECORD_KEY_ARN}"].startswith(f"arn:aws:kms:{region}:"), got
        assert got[f"{path}/{PARAM_TABLE_NAME}"] == "mrk-toolkit-records", got


def test_up_refuses_a_taken_port_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("-m", "offline", "up", "--port", str(port))
    assert_one_line(result, f"127.0.0.1:{port} is in use", "--port", f"the default is {cli.UP_PORT}")


def test_up_help_names_the_default_port_and_env_file() -> None:
    result = run_cli("-m", "offline", "up", "--help")
    text = " ".join(result.stdout.split())
    assert f"(default {cli.UP_PORT})" in text and "(default cdk.out/offline-up.env)" in text, text
    assert "SIGINT" in text and "SIGTERM" in text, text


def test_a_python_without_aws_cdk_reruns_the_command_under_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    """As app.py does for `npx cdk`: `python -m offline ...` needs no activated .venv."""
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(cli.sys, "prefix", "/usr")
    monkeypatch.setattr(cli.sys, "argv", ["/x/offline/__main__.py", "up", "--port", "4600"])
    monkeypatch.setattr(cli.os, "execve", lambda exe, args, env: calls.append((exe, args, env)))
    monkeypatch.setattr(cli, "VENV", REPO_ROOT / ".venv")
    if not (REPO_ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv here")
    with pytest.raises(SystemExit):  # execve is faked: the fallback message follows it
        cli._rerun_under_venv()
    ((exe, args, env),) = calls
    assert exe == REPO_ROOT / ".venv" / "bin" / "python"
    assert args == [str(exe), "-m", "offline", "up", "--port", "4600"]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(cli.REPO)
