"""Day two on the emulator, as the README tells it: a region added under a running deployment
and removed again, then the whole deployment torn down. Each README block runs line by line as
written (`python -m offline ...` through its main, `aws ...` lines as the API calls they stand
for, `make ...` as a process) against `python -m offline up` served from this process; the
checks sit between the steps."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import offline.__main__ as cli
from cloud_assembly.reader import load_assembly
from offline.__main__ import main
from offline.emulator.resource_lifecycle import StackOperationFailed
from offline.runbooks.teardown import CliCommand
from offline.verification import emulated
from stacks.synthesize import synthesize
from tests.offline.edits import LAG, edited, resources

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
TABLE = "mrk-toolkit-records"
PREFIX = "MrkToolkit"


def readme_block(name: str) -> list[str]:
    """The command lines of a README block (between <!-- name:start --> and <!-- name:end -->)."""
    text = (REPO / "README.md").read_text()
    block = text.split(f"<!-- {name}:start -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("```")]


def argv(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    assert words[:3] == ["python", "-m", "offline"], line
    return words[3:]


def client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)


def invoke(region: str, kind: str, event: dict[str, Any]) -> dict[str, Any]:
    """An ordinary boto3 Lambda client against the served emulator (as `aws lambda invoke`)."""
    names = {"writer": "WriterFunctionName", "reader": "ReaderFunctionName"}
    stack = client("cloudformation", region).describe_stacks(StackName=f"{PREFIX}-Functions-{region}")["Stacks"][0]
    name = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == names[kind])
    reply = client("lambda", region).invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return json.loads(reply["Payload"].read())  # type: ignore[no-any-return]


def read_eventually(region: str, item_id: str, deadline_s: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while True:
        result = invoke(region, "reader", {"id": item_id})
        if result.get("ok") or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def write(region: str, item_id: str, record: dict[str, Any]) -> None:
    result = invoke(region, "writer", {"id": item_id, "record": record})
    assert result.get("ok") is True, result


def stack_exists(name: str, region: str) -> bool:
    try:
        client("cloudformation", region).describe_stacks(StackName=name)
    except client("cloudformation", region).exceptions.ClientError:
        return False
    return True


def table_exists(region: str) -> bool:
    return TABLE in client("dynamodb", region).list_tables()["TableNames"]


@pytest.fixture
def up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[Callable[..., Any]]:
    """Run README's `python -m offline up` line; ``while_up(env)`` runs while it serves (until it
    is signalled), with the printed exports in the environment. Returns what ``while_up`` returns."""
    seen: dict[str, Any] = {}
    real_stood_up = emulated.stood_up

    @contextlib.contextmanager
    def stood_up(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real_stood_up(*args, **{**kwargs, "lag_seconds": LAG}) as env:
            seen["env"] = env
            yield env

    def run(line: str, while_up: Callable[[Any], Any]) -> Any:
        def until_signalled() -> None:
            for export in [x for x in capsys.readouterr().out.splitlines() if x.startswith("export ")]:
                for name, value in (pair.split("=", 1) for pair in export.removeprefix("export ").split()):
                    monkeypatch.setenv(name, value)
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                monkeypatch.delenv(name, raising=False)
            seen["result"] = while_up(seen["env"])

        monkeypatch.setattr(emulated, "stood_up", stood_up)
        monkeypatch.setattr(cli, "_until_signalled", until_signalled)
        monkeypatch.setattr(cli, "UP_PORT", 0)  # a free port: other runs may hold the default
        monkeypatch.setattr(cli, "UP_ENV_FILE", tmp_path / "offline-up.env")
        assert main(argv(line)) == 0
        return seen["result"]

    yield run


def run_offline(line: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv(line))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_region_is_added_and_removed_under_a_running_deployment(
    up: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    steps = readme_block("region-change")
    assert [s.split()[:4] for s in steps] == [
        ["python", "-m", "offline", "up"],
        ["python", "-m", "offline", "deploy"],
        ["aws", "dynamodb", "update-table", "--region"],
        ["python", "-m", "offline", "deploy"],
        ["python", "-m", "offline", "destroy"],
    ], "the README's region steps changed: update this test's checks between them"

    def while_up(env: Any) -> None:
        before = _write_before(env)
        _add_region(steps[1], env, before, capsys)
        _refused_while_protected(steps[3], capsys)
        CliCommand.parse(steps[2]).run(client)
        _remove_region(steps[3], env, capsys)
        _delete_region_stacks(steps[4], env, capsys)

    up(steps[0], while_up)


def _write_before(env: Any) -> dict[str, dict[str, Any]]:
    assert env.replica_regions == ("us-west-1",)
    records = {f"before-{n}": {"name": f"P{n}", "ssn": f"078-05-{n:04d}", "card_number": f"4111-{n}"} for n in range(3)}
    for item_id, record in records.items():
        write("us-east-2", item_id, record)
    for item_id in records:
        assert read_eventually("us-west-1", item_id)["ok"] is True
    return records


def _add_region(line: str, env: Any, before: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_offline(line, capsys)
    assert code == 0, err
    assert "update  MrkToolkit-Keys-us-east-2/RecordsKey" in out and "changed KeyPolicy" in out, out
    assert f"replica eu-west-1 added, {len(before)} items copied from us-east-2" in out, out
    assert "regions now: us-east-2, us-west-1, eu-west-1" in out, out
    # The replica key: ReplicateKey of the primary (same key id), in eu-west-1.
    primary = client("kms", "us-east-2").describe_key(KeyId="alias/mrk-toolkit/records")["KeyMetadata"]
    replica = client("kms", "eu-west-1").describe_key(KeyId="alias/mrk-toolkit/records")["KeyMetadata"]
    assert replica["KeyId"] == primary["KeyId"] and replica["KeyId"].startswith("mrk-")
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert table_exists("eu-west-1")
    for region in ("us-east-2", "us-west-1"):  # each region's replication alarms now watch eu-west-1 too
        alarms = [a["AlarmName"] for a in client("cloudwatch", region).describe_alarms()["MetricAlarms"]]
        assert [a for a in alarms if "EuWest1" in a or "eu-west-1" in a], alarms
    reader = client("lambda", "eu-west-1").get_function_configuration(FunctionName=_function_name("eu-west-1"))
    assert reader["Environment"]["Variables"]["RECORDS_MRK_ARN"] == replica["Arn"]
    # Records written before eu-west-1 existed: read and decrypted there, with its own replica key.
    decisions = len(env.aws.gateway.decisions)
    for item_id, record in before.items():
        result = read_eventually("eu-west-1", item_id)
        assert result.get("ok") is True and result["record"] == record and result["read_region"] == "eu-west-1", result
    kms = [d for d in env.aws.gateway.decisions[decisions:] if d["action"] == "kms:Decrypt"]
    assert len(kms) == len(before) and all(d["allowed"] and d["resource"] == replica["Arn"] for d in kms), kms
    # The new region writes too, and every region reads it.
    write("eu-west-1", "from-eu", {"name": "E", "ssn": "999"})
    for region in ("us-east-2", "us-west-1"):
        assert read_eventually(region, "from-eu").get("ok") is True


def _function_name(region: str, kind: str = "Reader") -> str:
    stack = client("cloudformation", region).describe_stacks(StackName=f"{PREFIX}-Functions-{region}")["Stacks"][0]
    return str(next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == f"{kind}FunctionName"))


def _refused_while_protected(line: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The removal deployed before deletion protection is off fails, and the table stays as it was."""
    code, _out, err = run_offline(line, capsys)
    assert code == 2, err
    assert "deletion protection is on for that replica" in err, err
    assert "aws dynamodb update-table --region eu-west-1 --table-name mrk-toolkit-records" in err, err
    assert table_exists("eu-west-1")
    table = client("cloudformation", "us-east-2").describe_stacks(StackName=f"{PREFIX}-Table")["Stacks"][0]
    assert table["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE", table


def _remove_region(line: str, env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_offline(line, capsys)
    assert code == 0, err
    assert "replica eu-west-1 deleted with its items" in out, out
    assert (
        "still deployed (cdk deploy deletes no stack): MrkToolkit-Functions-eu-west-1, MrkToolkit-Keys-eu-west-1" in out
    )
    assert "python -m offline destroy --region eu-west-1" in out
    assert not table_exists("eu-west-1")
    assert sorted(env.replication.tables) == ["us-east-2", "us-west-1"]
    for region in ("us-east-2", "us-west-1"):  # the replication alarms toward eu-west-1 went with it
        alarms = [a["AlarmName"] for a in client("cloudwatch", region).describe_alarms()["MetricAlarms"]]
        assert alarms and not [a for a in alarms if "EuWest1" in a or "eu-west-1" in a], alarms
    kms = client("kms", "us-east-2")
    key_id = kms.describe_key(KeyId="alias/mrk-toolkit/records")["KeyMetadata"]["KeyId"]
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    replicate = next(s for s in policy["Statement"] if s.get("Sid") == "ReplicateOnlyToConfiguredRegions")
    assert replicate["Condition"]["StringEquals"]["kms:ReplicaRegion"] in ("us-west-1", ["us-west-1"])


def retained_single_region_keys(stacks: Any) -> int:
    """How many retained single-region KMS keys the templates of ``stacks`` declare."""
    return sum(
        1
        for stack in stacks
        for res in stack.template["Resources"].values()
        if res["Type"] == "AWS::KMS::Key"
        and not res["Properties"].get("MultiRegion")
        and res.get("DeletionPolicy") == "Retain"
    )


def _delete_region_stacks(line: str, env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    region_stacks = [s.artifact for s in env.deployment.stacks.values() if s.region == "eu-west-1"]
    expected = retained_single_region_keys(region_stacks)
    assert expected >= 2, "eu-west-1's table key and logs key at least"
    code, out, err = run_offline(line, capsys)
    assert code == 0, err
    for stack in (f"{PREFIX}-Functions-eu-west-1", f"{PREFIX}-Keys-eu-west-1"):
        assert f"deleted {stack} (eu-west-1)" in out and not stack_exists(stack, "eu-west-1"), out
    leftovers = [x for x in out.splitlines() if x.startswith("# ")]
    kinds = [x.split(" in eu-west-1 ")[1].split(",")[0] for x in leftovers if x.startswith("# key ")]
    assert kinds == ["(single-region key"] * expected + ["(multi-region key"], leftovers
    assert sum(x.startswith("# log group ") for x in leftovers) == 2, leftovers
    assert not any("table" in x for x in leftovers), "the eu-west-1 replica was deleted with the table update"
    # The remaining regions keep working, both ways.
    write("us-west-1", "after-removal", {"name": "W", "ssn": "1"})
    assert read_eventually("us-east-2", "after-removal")["record"] == {"name": "W", "ssn": "1"}
    write("us-east-2", "after-removal-2", {"name": "E", "ssn": "2"})
    assert read_eventually("us-west-1", "after-removal-2")["record"] == {"name": "E", "ssn": "2"}
    # What eu-west-1 left behind goes with the commands printed for it.
    for command in [CliCommand.parse(x) for x in out.splitlines() if x.startswith("aws ")]:
        command.run(client)
    keys = client("kms", "eu-west-1").list_keys()["Keys"]
    states = {client("kms", "eu-west-1").describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] for k in keys}
    assert states == {"PendingDeletion"}, states
    assert not client("logs", "eu-west-1").describe_log_groups()["logGroups"]
    assert env.replication.errors == []


def test_destroy_deletes_every_stack_and_its_commands_remove_what_stays(up: Callable[..., Any]) -> None:
    (line,) = readme_block("teardown")

    def while_up(env: Any) -> str:
        write("us-east-2", "kept", {"name": "K", "ssn": "1"})
        assert read_eventually("us-west-1", "kept").get("ok") is True
        made = subprocess.run(  # the README's line
            shlex.split(line, comments=True),
            cwd=REPO,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        for stack in env.deployment.assembly.stacks.values():
            assert not stack_exists(stack.name, stack.region), stack.name
        assert table_exists("us-east-2") and table_exists("us-west-1"), "the table is retained"
        for command in [CliCommand.parse(x) for x in made.stdout.splitlines() if x.startswith("aws ")]:
            command.run(client)
        _nothing_left(("us-east-2", "us-west-1"))
        seen["single"] = retained_single_region_keys(env.deployment.assembly.stacks.values())
        return made.stdout

    seen: dict[str, int] = {}
    out = up("python -m offline up", while_up)
    order = [f"deleted {PREFIX}-Functions-", f"deleted {PREFIX}-Table ", f"deleted {PREFIX}-Keys-us-west-1 "]
    positions = [out.index(text) for text in [*order, f"deleted {PREFIX}-Keys-us-east-2 "]]
    assert positions == sorted(positions), out
    commands = [x for x in out.splitlines() if x.startswith("aws ")]
    services = [c.split()[1] for c in commands]
    assert services == sorted(services, key=["dynamodb", "logs", "kms"].index), commands
    assert commands[-1].startswith("aws kms schedule-key-deletion --region us-east-2 --key-id mrk-"), commands
    keys = [x.split(" (", 1)[1] for x in out.splitlines() if x.startswith("# key ")]
    assert [k.split(",")[0] for k in keys] == ["single-region key"] * seen["single"] + ["multi-region key"] * 2, keys
    assert keys[-2].startswith("multi-region key, replica") and keys[-1].startswith("multi-region key, primary"), keys
    assert sum("delete-table" in c for c in commands) == 2 and sum("delete-log-group" in c for c in commands) == 4
    readme = (REPO / "README.md").read_text().split("## Tear down", 1)[1].split("\n## ", 1)[0]
    for example in [x for x in readme.splitlines() if x.startswith(("aws ", "# table")) and "<" not in x]:
        assert example in out.splitlines(), f"README example {example!r} is not what destroy prints"


def _nothing_left(regions: tuple[str, ...]) -> None:
    for region in regions:
        assert not client("dynamodb", region).list_tables()["TableNames"], region
        assert not client("logs", region).describe_log_groups()["logGroups"], region
        kms = client("kms", region)
        states = {kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] for k in kms.list_keys()["Keys"]}
        # A multi-region primary waits in PendingReplicaDeletion while its replicas are pending (as on AWS:
        # its own waiting period starts when the last replica is deleted).
        assert states <= {"PendingDeletion", "PendingReplicaDeletion"}, (region, states)
        assert not [a for a in kms.list_aliases()["Aliases"] if a["AliasName"].startswith("alias/mrk-toolkit")]
        assert not client("sns", region).list_topics()["Topics"], region
        cloudwatch = client("cloudwatch", region)
        assert not cloudwatch.describe_alarms()["MetricAlarms"] and not cloudwatch.list_dashboards()["DashboardEntries"]
    iam = client("iam", "us-east-1")
    assert not iam.list_roles(PathPrefix=f"/{PREFIX}/")["Roles"]
    assert not iam.list_policies(Scope="Local")["Policies"]


def test_a_region_the_primary_key_policy_does_not_name_gets_no_replica_key(
    default_assembly: Path, tmp_path: Path
) -> None:
    """The emulated KMS decides ReplicateKey with the primary's key policy as deployed: an edited
    assembly whose primary keys stack still limits kms:ReplicaRegion to us-west-1 fails to add
    eu-west-1 at its replica key, and the table gets no replica there."""
    three = synthesize({"mrk-toolkit:replicaRegions": "us-west-1,eu-west-1"})

    def stale_policy(template: dict[str, Any]) -> None:
        (mrk,) = resources(template, "AWS::KMS::Key", "RecordsKey")
        for statement in mrk["Properties"]["KeyPolicy"]["Statement"]:
            if statement.get("Sid") == "ReplicateOnlyToConfiguredRegions":
                statement["Condition"]["StringEquals"]["kms:ReplicaRegion"] = ["us-west-1"]

    broken = edited(three, tmp_path / "cdk.out", {f"{PREFIX}-Keys-us-east-2": stale_policy})
    with emulated.stood_up(
        load_assembly(default_assembly), lag_seconds=LAG, progress=lambda _line: None, log_dir=tmp_path / "logs"
    ) as env:
        with pytest.raises(StackOperationFailed, match=r"Keys-eu-west-1/RecordsKey.*kms:ReplicateKey"):
            env.apply(load_assembly(broken))
        assert sorted(env.deployment.tables) == ["us-east-2", "us-west-1"]
        assert env.deployment.stacks[f"{PREFIX}-Keys-eu-west-1"].status == "CREATE_FAILED"
        assert env.deployment.stacks[f"{PREFIX}-Table"].status == "CREATE_COMPLETE", "the table stack was not reached"
