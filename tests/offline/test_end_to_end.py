"""The main job end to end: the synthesized assembly stood up on the embedded emulated AWS,
the real handlers run under the roles the templates give them, cross-region decrypt proven.

Also: the verification of a real deployment (offline/verification/deployed.py) run against the emulator
with only the invocation layer swapped, and templates deliberately broken to show the run
fails and says what broke.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.reader import load_assembly
from offline.verification.checks import Capability, Check, Report, as_check
from offline.verification.deployed import DeployedEnvironment, LambdaInvoker, discover_functions
from offline.verification.emulated import run_offline, stood_up
from offline.verification.scenario import main_job, run_main_job

pytestmark = pytest.mark.e2e
LAG = 0.3
THREE_REGIONS = {"mrk-toolkit:replicaRegions": "us-west-1,eu-west-1"}


def _failures(report: Report) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


def _run(cdk_out: Path, tmp_path: Path) -> Report:
    return run_offline(cdk_out=cdk_out, lag_seconds=LAG, progress=lambda _line: None, log_dir=tmp_path / "logs")


def test_default_deployment_end_to_end(default_assembly: Path, tmp_path: Path) -> None:
    report = _run(default_assembly, tmp_path)
    assert report.ok, report.render()
    names = [c.name for c in report.checks]
    assert "writer encrypts and writes in us-east-2" in names
    assert "reader decrypts in us-west-1 after replication" in names
    assert "the reader's role in us-west-1 cannot write" in names
    assert "tampered item in us-west-1 is refused" in names
    for region in ("us-east-2", "us-west-1"):
        assert f"deployed: every resource policy in {region} names only its contract's principals" in names
        at_rest = f"deployed: everything at rest in {region} is encrypted with a customer-managed key of {region}"
        assert at_rest in names
        for kind in ("writer", "reader"):
            assert f"deployed: the {kind}'s role in {region} may do exactly its contract" in names
    assert len(names) >= 11


def test_three_region_deployment_end_to_end(tmp_path: Path) -> None:
    report = run_offline(
        context_overrides=THREE_REGIONS, lag_seconds=LAG, progress=lambda _line: None, log_dir=tmp_path
    )
    assert report.ok, report.render()
    names = [c.name for c in report.checks]
    for region in ("us-west-1", "eu-west-1"):
        assert f"reader decrypts in {region} after replication" in names
        assert f"table in {region} holds only ciphertext for sensitive fields" in names


class _FakeLambda:
    """A `lambda` client whose Invoke runs the emulated function: the only layer swapped."""

    def __init__(self, region: str, env: Any, names: dict[tuple[str, str], str]) -> None:
        self.region, self.env = region, env
        self.by_name = {name: kind for (r, kind), name in names.items() if r == region}
        self.invocations: list[str] = []

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        self.invocations.append(FunctionName)
        reply = self.env.host.invoke(self.region, self.by_name[FunctionName], json.loads(Payload))
        response: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(reply.get("result")).encode())}
        if reply.get("function_error"):
            response["FunctionError"] = "Unhandled"
        return response


class _FakeCloudFormation:
    def __init__(self, env: Any, region: str) -> None:
        self.env, self.region = env, region

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        assert StackName == f"MrkToolkit-Functions-{self.region}"
        outputs = [
            {
                "OutputKey": f"{kind.title()}FunctionName",
                "OutputValue": self.env.deployment.function(self.region, kind).name,
            }
            for kind in ("writer", "reader")
        ]
        return {"Stacks": [{"StackName": StackName, "Outputs": outputs}]}


def test_verify_command_logic_against_the_emulator(default_assembly: Path, tmp_path: Path) -> None:
    """verify's environment (the real-account one) on the emulator, with only `lambda invoke`
    swapped: it runs the main job's list, and reports N/A (not leaves out) what only the emulator can do."""
    with stood_up(
        load_assembly(default_assembly), lag_seconds=LAG, progress=lambda _line: None, log_dir=tmp_path
    ) as env:
        regions = (env.primary_region, *env.replica_regions)
        names = discover_functions("MrkToolkit", regions, cfn_factory=lambda region: _FakeCloudFormation(env, region))
        clients: dict[str, _FakeLambda] = {}

        def factory(region: str) -> _FakeLambda:
            return clients.setdefault(region, _FakeLambda(region, env, names))

        account = DeployedEnvironment(
            primary_region=env.primary_region,
            replica_regions=env.replica_regions,
            sensitive_fields=env.sensitive_fields,
            table_name=env.table_name,
            function_names=names,
            replication_deadline_s=10,
            client=env.aws.client,
            invoker=LambdaInvoker(names, client_factory=factory),
        )
        assert [c.name for c in _checks(account)] == [c.name for c in _checks(env)], "verify runs the main job's list"
        report = run_main_job(account, progress=lambda _line: None)
    assert report.ok, report.render()
    not_applicable = {c.name for c in report.checks if not c.applicable}
    emulator_only = {c.name for c in _checks(env) if c.needs - {Capability.ALTER_ITEMS}}
    assert not_applicable == emulator_only, "only what needs the emulator is N/A (a table writer alters items anywhere)"
    assert "two regions (us-east-2, us-west-1) write one id at once" in not_applicable
    assert clients["us-east-2"].invocations and clients["us-west-1"].invocations
    # Replicas run readers only: the one check that writes there (two regions at once) needs the emulator.
    assert set(clients["us-west-1"].invocations) == {names[("us-west-1", "reader")]}


def _checks(env: Any) -> list[Check]:
    return [as_check(c) for c in main_job(env)]


# -- broken templates: the run fails and says what broke ------------------------------------


def _broken(src: Path, dst: Path, stack: str, mutate: Callable[[dict[str, Any]], None]) -> Path:
    shutil.copytree(src, dst)
    path = dst / f"{stack}.template.json"
    template = json.loads(path.read_text())
    mutate(template)
    path.write_text(json.dumps(template))
    return dst


def _resources(template: dict[str, Any], type_name: str, contains: str) -> list[dict[str, Any]]:
    return [r for lid, r in template["Resources"].items() if r["Type"] == type_name and contains in lid]


def test_reader_role_without_kms_decrypt_fails_the_read_and_says_so(default_assembly: Path, tmp_path: Path) -> None:
    def drop_decrypt(template: dict[str, Any]) -> None:
        (policy,) = _resources(template, "AWS::IAM::ManagedPolicy", "ReaderAccessPolicy")
        for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
            if stmt["Action"] == "kms:Decrypt":
                stmt["Action"] = "kms:DescribeKey"

    broken = _broken(default_assembly, tmp_path / "cdk.out", "MrkToolkit-Functions-us-west-1", drop_decrypt)
    failures = _failures(_run(broken, tmp_path))
    detail = failures["reader decrypts in us-west-1 after replication"]
    assert "AccessDenied" in detail and "denied kms:Decrypt" in detail and "no identity policy" in detail, detail


def test_replica_key_policy_without_the_reader_fails_the_read_and_says_so(
    default_assembly: Path, tmp_path: Path
) -> None:
    def drop_reader_grant(template: dict[str, Any]) -> None:
        (key,) = _resources(template, "AWS::KMS::ReplicaKey", "RecordsKey")
        policy = key["Properties"]["KeyPolicy"]
        policy["Statement"] = [s for s in policy["Statement"] if s["Action"] != "kms:Decrypt"]

    broken = _broken(default_assembly, tmp_path / "cdk.out", "MrkToolkit-Keys-us-west-1", drop_reader_grant)
    failures = _failures(_run(broken, tmp_path))
    detail = failures["reader decrypts in us-west-1 after replication"]
    assert "AccessDenied" in detail and "denied kms:Decrypt" in detail and "key policy" in detail, detail


def test_reader_wired_to_the_primary_key_fails_and_says_so(default_assembly: Path, tmp_path: Path) -> None:
    keys_primary = json.loads((default_assembly / "MrkToolkit-Keys-us-east-2.template.json").read_text())
    (output,) = [k for k in keys_primary["Outputs"] if k.startswith("PublishOutput") and "RecordsKey" in k]

    def point_at_primary(template: dict[str, Any]) -> None:
        (function,) = _resources(template, "AWS::Lambda::Function", "ReaderFunction")
        function["Properties"]["Environment"]["Variables"]["RECORDS_MRK_ARN"] = {
            "Fn::GetStackOutput": {
                "StackName": "MrkToolkit-Keys-us-east-2",
                "Region": "us-east-2",
                "OutputName": output,
            }
        }

    broken = _broken(default_assembly, tmp_path / "cdk.out", "MrkToolkit-Functions-us-west-1", point_at_primary)
    with pytest.raises(Exception, match=r"RECORDS_MRK_ARN=.*own region us-west-1"):
        _run(broken, tmp_path)


def test_replica_key_wired_to_a_single_region_key_fails_the_deploy_and_says_so(
    default_assembly: Path, tmp_path: Path
) -> None:
    keys_primary = json.loads((default_assembly / "MrkToolkit-Keys-us-east-2.template.json").read_text())
    (sse_output,) = [k for k in keys_primary["Outputs"] if k.startswith("PublishOutput") and "TableKey" in k]

    def wire_to_sse_key(template: dict[str, Any]) -> None:
        (key,) = _resources(template, "AWS::KMS::ReplicaKey", "RecordsKey")
        key["Properties"]["PrimaryKeyArn"]["Fn::GetStackOutput"]["OutputName"] = sse_output

    broken = _broken(default_assembly, tmp_path / "cdk.out", "MrkToolkit-Keys-us-west-1", wire_to_sse_key)
    with pytest.raises(
        Exception, match=r"MrkToolkit-Keys-us-west-1/RecordsKey.*PrimaryKeyArn .* is not a multi-region key ARN"
    ):
        _run(broken, tmp_path)


def test_writer_given_kms_decrypt_fails_the_least_privilege_check(default_assembly: Path, tmp_path: Path) -> None:
    def widen(statement_action: str) -> Callable[[dict[str, Any]], None]:
        def mutate(template: dict[str, Any]) -> None:
            for res in template["Resources"].values():
                doc = res["Properties"].get("KeyPolicy") or res["Properties"].get("PolicyDocument") or {}
                for stmt in doc.get("Statement", []):
                    if stmt["Action"] == statement_action:
                        stmt["Action"] = [statement_action, "kms:Decrypt"]

        return mutate

    broken = _broken(default_assembly, tmp_path / "cdk.out", "MrkToolkit-Keys-us-west-1", widen("kms:GenerateDataKey"))
    path = broken / "MrkToolkit-Functions-us-west-1.template.json"
    template = json.loads(path.read_text())
    widen("kms:GenerateDataKey")(template)
    path.write_text(json.dumps(template))

    failures = _failures(_run(broken, tmp_path))
    detail = failures["the writer's role in us-west-1 cannot decrypt"]
    assert "the writer role may kms:Decrypt on the us-west-1 MRK" in detail, detail
