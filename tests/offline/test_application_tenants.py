"""The application roles with tenants, as a user with an account runs them (README "The application roles"):
`python -m offline up` with tenants and ``applicationPrincipals``, then examples/records_from_python.py
``--tenant``: the library discovers the region's tenant keys and the application role's tenant-access role,
takes the tenant's tagged session, writes as tenant acme in us-east-2 and reads in us-west-1. Tenant globex,
whose key is in us-east-2 alone, is refused in us-west-1; an application session of acme may not use
globex's key (nor globex's context), and the application roles may not take a session tagged otherwise."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from record_crypto import RecordService, clear_discovery_cache

from lambda_src.record_crypto.settings import (
    PARAM_TENANT_KEYS,
    PARAM_WRITER_TENANT_ROLE_ARN,
    TENANT_KEY,
    discovery_path,
)
from offline.emulator.server import MOTO_ACCOUNT
from offline.verification.emulated import run_offline
from stacks.synthesize import synthesize
from tests.offline.test_application_example import _example, _outputs
from tests.offline.test_up_service import _free_port, _sourced, up_in_background

pytestmark = pytest.mark.e2e
TENANTS = {"acme": {}, "globex": {"regions": ["us-east-2"]}}
CONTEXT = {"mrk-toolkit:applicationPrincipals": MOTO_ACCOUNT, "mrk-toolkit:tenants": json.dumps(TENANTS)}
RECORD_CONTEXT = {"purpose": "mrk-toolkit:record", "table": "mrk-toolkit-records", "schema": "1"}


def _client(env: dict[str, str], service: str, region: str, credentials: dict[str, str] | None = None) -> Any:
    keys = credentials or {"AccessKeyId": env["AWS_ACCESS_KEY_ID"], "SecretAccessKey": env["AWS_SECRET_ACCESS_KEY"]}
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys.get("SessionToken"),
    )


def _assume(env: dict[str, str], role_arn: str, caller: dict[str, str] | None = None, **extra: Any) -> dict[str, str]:
    sts = _client(env, "sts", "us-east-2", caller)
    return sts.assume_role(RoleArn=role_arn, RoleSessionName="test", **extra)["Credentials"]  # type: ignore[no-any-return]


def _denied(call: Any) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
    return False


def _check_sessions(env: dict[str, str], writer: str) -> None:
    """As the application writer of us-east-2: acme's session makes data keys under acme's key only."""
    path = discovery_path("MrkToolkit", "us-east-2")
    ssm = _client(env, "ssm", "us-east-2")
    keys = json.loads(ssm.get_parameter(Name=f"{path}/{PARAM_TENANT_KEYS}")["Parameter"]["Value"])
    tenant_role = ssm.get_parameter(Name=f"{path}/{PARAM_WRITER_TENANT_ROLE_ARN}")["Parameter"]["Value"]
    app = _assume(env, writer)
    acme = _assume(env, tenant_role, app, Tags=[{"Key": TENANT_KEY, "Value": "acme"}])
    kms = _client(env, "kms", "us-east-2", acme)

    def data_key(tenant_key: str, tenant: str) -> Any:
        return lambda: kms.generate_data_key(
            KeyId=keys[tenant_key], KeySpec="AES_256", EncryptionContext={**RECORD_CONTEXT, TENANT_KEY: tenant}
        )

    data_key("acme", "acme")()  # its own key, its own context
    assert _denied(data_key("globex", "globex")), "acme's session used globex's key"
    assert _denied(data_key("globex", "acme")), "acme's session used globex's key with its own context"
    assert _denied(data_key("acme", "globex")), "acme's session used globex's context"
    # The application writer's own session: no key; no untagged or twice-tagged tenant session.
    assert _denied(lambda: _client(env, "kms", "us-east-2", app).generate_data_key(
        KeyId=keys["acme"], KeySpec="AES_256", EncryptionContext={**RECORD_CONTEXT, TENANT_KEY: "acme"}
    ))  # fmt: skip
    assert _denied(lambda: _assume(env, tenant_role, app))
    two_tags = [{"Key": TENANT_KEY, "Value": "acme"}, {"Key": "team", "Value": "x"}]
    assert _denied(lambda: _assume(env, tenant_role, app, Tags=two_tags))


def test_the_example_writes_and_reads_as_a_tenant_under_the_application_roles(tmp_path: Path) -> None:
    port, env_file, out = _free_port(), tmp_path / "up.env", tmp_path / "up.out"
    command = ["-m", "offline", "up", "--port", str(port), "--lag", "0.5"]
    for key, value in CONTEXT.items():
        command += ["-c", f"{key}={value}"]
    with up_in_background(command, env_file, out, stderr=subprocess.STDOUT, timeout=400) as up:
        env = {**_sourced(env_file), "HOME": str(tmp_path)}
        writer = _outputs(env, "us-east-2")["ApplicationWriterRoleArn"]
        reader = _outputs(env, "us-west-1")["ApplicationReaderRoleArn"]
        roles = ("--writer-role-arn", writer, "--reader-role-arn", reader)

        done = _example(env, "--region", "us-east-2", "--read-region", "us-west-1", *roles, "--tenant", "acme")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "stored example-1 version 1 in us-east-2, encrypted ['ssn']", lines
        assert lines[1] == "read example-1 version 1 in us-west-1: name=Ada, ssn decrypted", lines
        assert lines[-1] == "updated example-1 to version 2", lines

        # globex's key is in us-east-2 alone: us-west-1's application writer is refused before any AWS call.
        west_writer = _outputs(env, "us-west-1")["ApplicationWriterRoleArn"]
        globex = _example(env, "--region", "us-west-1", "--writer-role-arn", west_writer, "--tenant", "globex")
        assert globex.returncode == 1
        assert globex.stderr.splitlines()[-1].startswith("TenantNotInRegion"), globex.stderr
        _check_sessions(env, writer)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, out.read_text()


def test_the_main_job_reads_the_application_tenant_roles_back(tmp_path: Path) -> None:
    """The main job's read-back decides each application role and its tenant-access role on what is deployed."""
    cdk_out = synthesize(CONTEXT, str(tmp_path / "cdk.out"))
    report = run_offline(cdk_out=Path(cdk_out), progress=lambda _line: None, log_dir=tmp_path / "logs")
    assert report.ok, report.render()
    passed = {c.name for c in report.checks if c.ok}
    for region in ("us-east-2", "us-west-1"):
        for title in (
            "the application writer's role",
            "the application reader's role",
            "the application writer's tenant-access role",
            "the application reader's tenant-access role",
        ):
            assert f"deployed: {title} in {region} may do exactly its contract" in passed, sorted(passed)


BEACONS = {**CONTEXT, "mrk-toolkit:beaconFields": json.dumps({"ssn": {"bits": 24, "normalize": "digits"}})}


def _find(env: dict[str, str], region: str, event: dict[str, Any]) -> dict[str, Any]:
    """The finder function's answer, retried while the record has not replicated (30 s at most)."""
    finder = _outputs(env, region)["FinderFunctionName"]
    deadline = time.monotonic() + 30
    while True:
        answer = _client(env, "lambda", region).invoke(FunctionName=finder, Payload=json.dumps(event).encode())
        result: dict[str, Any] = json.loads(answer["Payload"].read())
        if result.get("matches") or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_with_beacon_fields_the_library_writes_beacons_the_finder_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The application writer computes the record's beacons (its kms:GenerateMac), in this process under its
    assumed role: the finder function of another region finds the record by its ssn, as acme."""
    port, env_file, out = _free_port(), tmp_path / "up.env", tmp_path / "up.out"
    command = ["-m", "offline", "up", "--port", str(port), "--lag", "0.5"]
    for key, value in BEACONS.items():
        command += ["-c", f"{key}={value}"]
    with up_in_background(command, env_file, out, stderr=subprocess.STDOUT, timeout=400) as up:
        env = {**_sourced(env_file), "HOME": str(tmp_path)}
        monkeypatch.setenv("AWS_ENDPOINT_URL", env["AWS_ENDPOINT_URL"])
        credentials = _assume(env, _outputs(env, "us-east-2")["ApplicationWriterRoleArn"])
        session = botocore.session.Session()
        session.set_credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
        clear_discovery_cache()
        records = RecordService.discover(region="us-east-2", deployment="MrkToolkit", botocore_session=session)
        assert records.beacons is not None  # discovered: the fields and the region's beacon key
        records.put("beacon-1", {"name": "Bo", "ssn": "078-05-1120"}, tenant="acme")
        result = _find(env, "us-west-1", {"field": "ssn", "value": "078051120", "tenant": "acme"})
        assert [m["id"] for m in result.get("matches", [])] == ["beacon-1"], result
        clear_discovery_cache()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, out.read_text()
