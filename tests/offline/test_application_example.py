"""The README's example as a user with an account runs it (README "The application roles"): `python -m offline
up` with ``applicationPrincipals`` naming the account, the exports sourced, the application roles read from
the functions stacks' outputs, and examples/records_from_python.py assuming the application writer of one
region and the application reader of another: it discovers the deployment, writes in us-east-2 and reads in
us-west-1, with the IAM user's keys `up` exports (as on AWS, the root user could not assume the roles). The
application reader's session may not write (its key use is Decrypt only)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from offline.emulator.server import ADMIN_USER, MOTO_ACCOUNT
from offline.verification.emulated import run_offline
from stacks.synthesize import synthesize
from tests.infra.synth import REPO_ROOT
from tests.offline.test_up_service import _free_port, _sourced, up_in_background

pytestmark = pytest.mark.e2e
EXAMPLE = REPO_ROOT / "examples" / "records_from_python.py"


def _outputs(env: dict[str, str], region: str) -> dict[str, str]:
    """The functions stack's outputs, as `aws cloudformation describe-stacks` shows them."""
    cloudformation = boto3.client(
        "cloudformation",
        region_name=region,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    (stack,) = cloudformation.describe_stacks(StackName=f"MrkToolkit-Functions-{region}")["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _example(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), "--deployment", "MrkToolkit", *args],
        cwd=REPO_ROOT,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_example_assumes_the_application_roles_against_offline_up(tmp_path: Path) -> None:
    port, env_file, out = _free_port(), tmp_path / "up.env", tmp_path / "up.out"
    principals = f"mrk-toolkit:applicationPrincipals={MOTO_ACCOUNT}"
    command = ["-m", "offline", "up", "--port", str(port), "--lag", "0.5", "-c", principals]
    with up_in_background(command, env_file, out, stderr=subprocess.STDOUT, timeout=400) as up:
        env = {**_sourced(env_file), "HOME": str(tmp_path)}
        # The exported keys are an IAM user's: AWS refuses AssumeRole to the root user (offline/emulator/sts.py).
        caller = boto3.client(
            "sts",
            region_name="us-east-2",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        ).get_caller_identity()["Arn"]
        assert caller == f"arn:aws:iam::{MOTO_ACCOUNT}:user/{ADMIN_USER}", caller
        writer = _outputs(env, "us-east-2")["ApplicationWriterRoleArn"]
        reader = _outputs(env, "us-west-1")["ApplicationReaderRoleArn"]
        assert ":role/MrkToolkit/writer/" in writer and ":role/MrkToolkit/reader/" in reader

        done = _example(
            env, "--region", "us-east-2", "--read-region", "us-west-1", "--writer-role-arn", writer,
            "--reader-role-arn", reader,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "stored example-1 version 1 in us-east-2, encrypted ['ssn']", lines
        assert lines[1] == "read example-1 version 1 in us-west-1: name=Ada, ssn decrypted", lines
        assert lines[-1] == "updated example-1 to version 2", lines

        # The application reader's session writing: refused by KMS (the role may only Decrypt).
        west_reader_as_writer = _example(env, "--region", "us-west-1", "--writer-role-arn", reader)
        assert west_reader_as_writer.returncode == 1
        last = west_reader_as_writer.stderr.splitlines()[-1]
        assert last.startswith("AccessDenied (403): KMS denied GenerateDataKey on arn:aws:kms:us-west-1:"), last
        # us-east-2's application writer cannot discover us-west-1 (another region's parameters).
        elsewhere = _example(env, "--region", "us-west-1", "--writer-role-arn", writer)
        assert elsewhere.returncode == 1
        assert elsewhere.stderr.splitlines()[-1].startswith("DeploymentNotDiscovered"), elsewhere.stderr
        assert "/MrkToolkit/us-west-1" in elsewhere.stderr and "ssm:GetParametersByPath" in elsewhere.stderr
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, out.read_text()


def test_the_main_job_reads_the_application_roles_back(tmp_path: Path) -> None:
    """The deployment with application roles passes the main job, whose read-back decides each application
    role's whole access on what is deployed (its contract, offline/verification/permissions.py)."""
    cdk_out = synthesize({"mrk-toolkit:applicationPrincipals": MOTO_ACCOUNT}, str(tmp_path / "cdk.out"))
    report = run_offline(cdk_out=Path(cdk_out), progress=lambda _line: None, log_dir=tmp_path / "logs")
    assert report.ok, report.render()
    passed = {c.name for c in report.checks if c.ok}
    for region in ("us-east-2", "us-west-1"):
        for title in ("the application writer's role", "the application reader's role"):
            assert f"deployed: {title} in {region} may do exactly its contract" in passed, sorted(passed)
