"""The region outage runbook, every step, on the emulator (README "Region outage runbook").

One emulated deployment serves the module: the drill takes the primary region down (the MRK
primary and the table stack's home), then a replica region; every acknowledged write must be
read and decrypted in every region once the region returns. The operator's commands run as a
user types them against `python -m offline up`'s endpoint; only key administrators may move the
key's primary; what CloudFormation can update while a region is down is read from the templates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cloud_assembly.reader import load_assembly
from offline.__main__ import main
from offline.verification.drill import OutageDrill
from offline.verification.emulated import EmulatedEnvironment, stood_up, up_instructions
from tests.infra.synth import REPO_ROOT
from tests.offline.edits import edited

pytestmark = pytest.mark.e2e
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture(scope="module")
def env(default_assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedEnvironment]:
    log_dir = tmp_path_factory.mktemp("outage-logs")
    with stood_up(load_assembly(default_assembly), lag_seconds=0.5, progress=lambda _: None, log_dir=log_dir) as up:
        yield up


def _runbook_section() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index("## Region outage runbook")
    return readme[start : readme.index("\n## ", start + 1)]


def test_the_primary_region_goes_down_and_no_acknowledged_record_is_lost(env: EmulatedEnvironment) -> None:
    drill = OutageDrill(env, progress=lambda _: None)
    report = drill.run()
    print(report.render())
    assert report.ok, report.render()
    assert drill.ledger.lost == []
    assert drill.ledger.acked_during_outage >= drill.writes + 1, "the healthy region took writes during the outage"
    assert len(drill.ledger.refused) == 2
    assert drill.numbers["queued_toward_down"] >= drill.ledger.acked_during_outage - 1
    names = [c.name for c in report.checks]
    assert any(n.startswith("promote: KMS in us-east-2 answers again") for n in names), names


def test_a_replica_region_goes_down_and_no_acknowledged_record_is_lost(env: EmulatedEnvironment) -> None:
    drill = OutageDrill(env, down="us-west-1", progress=lambda _: None)
    report = drill.run()
    assert report.ok, report.render()
    assert drill.ledger.lost == [] and drill.ledger.acked_during_outage > 0
    labels = {c.name.split(":")[0] for c in report.checks}
    assert not labels & {"no promotion", "promote"}, "the primary stays where it is"


def test_every_drill_step_is_a_step_of_the_readme_runbook(env: EmulatedEnvironment) -> None:
    section = _runbook_section()
    for step in OutageDrill(env, progress=lambda _: None).checks():
        label = step.name.split(":")[0]
        assert f"**{label}**" in section, f"the README's runbook has no step {label!r} (the drill runs it)"
    for verb in ("outage", "recover", "promote-key", "stack-plan", "drill"):
        assert f"python -m offline {verb}" in section


def test_only_key_administrators_may_move_the_primary(env: EmulatedEnvironment) -> None:
    """The attacker with a function's role tries kms:UpdatePrimaryRegion on the primary: refused,
    in every region, to every destination. The administrator is refused a region outside the
    deployment (kms:PrimaryRegion), and refused when the promoted replica's own key policy does
    not allow it (KMS checks both keys); it may move the primary within the deployment."""
    primary = env.deployment.function(env.primary_region, "writer").environment["RECORDS_MRK_ARN"]
    kms_at_home = env.aws.client("kms", env.primary_region)
    for region in (env.primary_region, *env.replica_regions):
        for kind in ("writer", "reader"):
            role = env.deployment.function(region, kind).role_arn
            kms = env.aws.role_session(role).client(
                "kms", region_name=env.primary_region, endpoint_url=env.aws.endpoint_url, config=ONE_ATTEMPT
            )
            for target in env.replica_regions:
                with pytest.raises(ClientError, match=r"AccessDeniedException.*kms:UpdatePrimaryRegion"):
                    kms.update_primary_region(KeyId=primary, PrimaryRegion=target)
    with pytest.raises(ClientError, match=r"AccessDeniedException.*(kms:PrimaryRegion|not allow)"):
        kms_at_home.update_primary_region(KeyId=primary, PrimaryRegion="eu-north-1")

    replica_region = env.replica_regions[0]
    replica_kms = env.aws.client("kms", replica_region)
    policy = replica_kms.get_key_policy(KeyId=primary.split("/")[-1], PolicyName="default")["Policy"]
    without = json.loads(policy)
    promote_sid = "AdministratorsMovePrimaryWithinDeployment"
    without["Statement"] = [s for s in without["Statement"] if s.get("Sid") != promote_sid]
    replica_kms.put_key_policy(KeyId=primary.split("/")[-1], PolicyName="default", Policy=json.dumps(without))
    try:
        with pytest.raises(ClientError, match=rf"kms:UpdatePrimaryRegion on resource: arn:aws:kms:{replica_region}:"):
            kms_at_home.update_primary_region(KeyId=primary, PrimaryRegion=replica_region)
    finally:
        replica_kms.put_key_policy(KeyId=primary.split("/")[-1], PolicyName="default", Policy=policy)
    kms_at_home.update_primary_region(KeyId=primary, PrimaryRegion=replica_region)
    try:
        moved = kms_at_home.describe_key(KeyId=primary)["KeyMetadata"]["MultiRegionConfiguration"]
        assert (moved["MultiRegionKeyType"], moved["PrimaryKey"]["Region"]) == ("REPLICA", replica_region)
    finally:  # back where the templates declare it, called in the region of the (new) primary
        replica_arn = primary.replace(f":{env.primary_region}:", f":{replica_region}:")
        replica_kms.update_primary_region(KeyId=replica_arn, PrimaryRegion=env.primary_region)
    meta = kms_at_home.describe_key(KeyId=primary)["KeyMetadata"]["MultiRegionConfiguration"]
    assert meta["MultiRegionKeyType"] == "PRIMARY"


def _exports(env: EmulatedEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for line in up_instructions(env):
        if line.startswith("export "):
            for name, value in (pair.split("=", 1) for pair in line.removeprefix("export ").split()):
                monkeypatch.setenv(name, value)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_the_runbook_verbs_as_a_user_types_them_against_offline_up(
    env: EmulatedEnvironment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _exports(env, monkeypatch)
    home, other = env.primary_region, env.replica_regions[0]
    assert any(f"python -m offline outage {home}" in line for line in up_instructions(env))
    try:
        code, out, _ = _run(capsys, "outage", home)
        assert code == 0 and f"{home}: DOWN (every service)" in out, out
        table = boto3.client("dynamodb", region_name=home, config=ONE_ATTEMPT)
        with pytest.raises(ClientError, match="ServiceUnavailable"):
            table.describe_table(TableName=env.deployment.tables[home])
        code, _, err = _run(capsys, "promote-key", "--to", other)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"KMS in {home}, the region of the current primary, did not answer UpdatePrimaryRegion" in err

        code, out, _ = _run(capsys, "outage", home, "--services", "dynamodb,lambda")
        assert code == 0 and "DOWN (dynamodb, lambda)" in out, out
        code, out, _ = _run(capsys, "promote-key", "--to", other)
        assert code == 0 and f"from {home} to {other}" in out and "DRIFT" in out, out
        code, out, _ = _run(capsys, "promote-key", "--to", home)
        assert code == 0 and f"from {other} to {home}" in out and "No drift" in out, out
    finally:
        code, out, _ = _run(capsys, "recover", home)
    assert code == 0 and f"{home}: answers again; outages now: none" in out, out
    assert table.describe_table(TableName=env.deployment.tables[home])["Table"]["TableStatus"] == "ACTIVE"


def test_outage_refuses_a_real_account_and_a_bad_region(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    code, _, err = _run(capsys, "outage", "us-east-2")
    assert code == 2 and "acts on the emulator only" in err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code, _, err = _run(capsys, "recover", "us-nowhere-1")
    assert code == 2 and "us-nowhere-1" in err


def test_stack_plan_is_read_from_the_templates(
    default_assembly: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the primary region is down only the functions stacks of the other regions can be
    updated; an edited template whose functions stack reads an output of the table stack (in the
    primary region) loses that too."""
    code, out, _ = _run(capsys, "stack-plan", "--down", "us-east-2", "--cdk-out", str(default_assembly))
    assert code == 0
    can = re.findall(r"^CAN update +(\S+)", out, re.M)
    assert can == ["MrkToolkit-Functions-us-west-1"], out
    assert re.search(r"CANNOT update MrkToolkit-Keys-us-west-1 .*reads outputs of MrkToolkit-Keys-us-east-2", out)
    code, out, _ = _run(capsys, "stack-plan", "--down", "us-west-1", "--cdk-out", str(default_assembly))
    assert re.search(r"CANNOT update MrkToolkit-Table \(us-east-2\): us-west-1", out), out

    def reads_the_table_stack(template: dict[str, Any]) -> None:
        ref = {"StackName": "MrkToolkit-Table", "Region": "us-east-2", "OutputName": "Anything"}
        template.setdefault("Outputs", {})["TableReference"] = {"Value": {"Fn::GetStackOutput": ref}}

    changed = edited(default_assembly, tmp_path / "cdk.out", {"MrkToolkit-Functions-us-west-1": reads_the_table_stack})
    code, out, _ = _run(capsys, "stack-plan", "--down", "us-east-2", "--cdk-out", str(changed))
    assert "CAN update" not in out and "CANNOT update MrkToolkit-Functions-us-west-1" in out, out


def test_a_replication_that_drops_changes_toward_a_down_region_is_caught(
    env: EmulatedEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken on purpose: the replication gives up a delivery the destination did not answer
    instead of keeping it queued (what it did before). The drill finds acknowledged records
    missing in the recovered region."""
    assert env.replication is not None
    deliver = env.replication._deliver
    monkeypatch.setattr(env.replication, "_deliver", lambda pending, region: deliver(pending, region) or True)
    drill = OutageDrill(env, down=env.replica_regions[0], deadline_s=3, progress=lambda _: None)
    try:
        report = drill.run()
    finally:
        assert env.replication is not None
        env.replication.errors.clear()
    failed = {c.name.split(":")[0] for c in report.checks if not c.ok}
    assert "verify" in failed, report.render()
    assert drill.ledger.lost, "records written during the outage never reach the recovered region"
