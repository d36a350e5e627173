"""`verify` (the command for a real account) run unchanged against the emulated deployment
served on 127.0.0.1: only the endpoint and the credentials in the environment differ. It passes
on the synthesized assembly and catches the edited ones."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloud_assembly.reader import load_assembly
from lambda_src.record_crypto.settings import STORE_AURORA_POSTGRESQL
from offline.__main__ import main
from offline.verification.emulated import EmulatedEnvironment, serve, stood_up, up_instructions
from stacks.config import CONTEXT_PREFIX
from stacks.synthesize import synthesize
from tests.offline.edits import LAG, drop_condition_keys, edited, resources

pytestmark = pytest.mark.e2e
VERIFY = ["verify", "--primary", "us-east-2", "--replicas", "us-west-1", "--deadline", "10"]
# The main job's checks that need what only the emulator can do: verify lists them as N/A.
EMULATOR_ONLY = [
    "two regions (us-east-2, us-west-1) write one id at once",
    "function logs hold no plaintext",
    "the multi-region key rotates on demand, and every region decrypts across the rotation",
    "signals: the main job's tamper refusals reach the security alarms, which fire (emulated evaluation)",
    "audit: the account's administrator decrypting a record in us-west-1 fires us-west-1's unexpected-use alert",
    "audit: a change to the records key's policy in us-west-1 fires us-west-1's administration alert",
    "audit: stopping the audit trail's logging fires the trail-changes alert in its home region",
]
# The checks that alter a stored item (and fire the security alarms): --no-tamper-checks skips them.
ALTERING = [
    "tampered item in us-west-1 is refused",
    "ciphertext moved to another item in us-west-1 is refused",
    "planted sensitive value in us-west-1 is refused",
    "changed plaintext attribute in us-west-1 is refused",
    "rolled-back item in us-west-1 is refused with min_version",
]


def _exports(env: EmulatedEnvironment) -> dict[str, str]:
    out = {}
    for line in up_instructions(env):
        if line.startswith("export "):
            out.update(pair.split("=", 1) for pair in line.removeprefix("export ").split())
    return out


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    def up(cdk_out: Path) -> Any:
        stack = stood_up(load_assembly(cdk_out), lag_seconds=LAG, progress=lambda _line: None, log_dir=tmp_path)
        env = stack.__enter__()
        opened.append(stack)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in _exports(env).items():
            monkeypatch.setenv(name, value)
        return env

    opened: list[Any] = []
    yield up
    for stack in opened:
        stack.__exit__(None, None, None)


def test_up_serves_verify_and_ordinary_clients(
    default_assembly: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m offline up` as a user runs it: read the printed exports, then a boto3 client
    invokes the real writer and `verify` passes, until `up` is told to stop."""
    seen: dict[str, Any] = {}

    def while_up() -> None:
        printed = capsys.readouterr().out
        for line in printed.splitlines():
            if line.startswith("export "):
                for name, value in (pair.split("=", 1) for pair in line.removeprefix("export ").split()):
                    monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        writer = next(line.split()[5] for line in printed.splitlines() if "aws lambda invoke" in line)
        reply = boto3.client("lambda", region_name="us-east-2").invoke(
            FunctionName=writer, Payload=json.dumps({"id": "p1", "record": {"ssn": "1"}}).encode()
        )
        seen["invoke"] = json.loads(reply["Payload"].read())
        seen["code"] = main(VERIFY)
        seen["out"] = capsys.readouterr().out

    serve(cdk_out=default_assembly, context_overrides={}, lag_seconds=LAG, wait=while_up)
    assert seen["invoke"]["ok"] is True, "an ordinary boto3 client invokes the real writer"
    assert seen["code"] == 0, seen["out"]
    assert "PASS  KMS refuses the reader's role in us-west-1 a foreign encryption context" in seen["out"]
    assert "deployed: point-in-time recovery is on in us-west-1" in seen["out"]
    assert "PASS  deployed: us-west-1 alarms on its functions and replication notify an encrypted topic" in seen["out"]
    assert "PASS  deployed: every resource policy in us-west-1 names only its contract's principals" in seen["out"]
    assert "PASS  deployed: everything at rest in us-west-1 is encrypted with a customer-managed key" in seen["out"]
    not_applicable = [line.split("  ")[1].strip() for line in seen["out"].splitlines() if line.startswith("N/A ")]
    assert sorted(not_applicable) == sorted(EMULATOR_ONLY), seen["out"]


def _tables(env: EmulatedEnvironment) -> dict[str, list[dict[str, Any]]]:
    """Every item of every replica, as DynamoDB returns it (a Scan, paginated), sorted by id."""
    out = {}
    for region, table in env.deployment.tables.items():
        pages = boto3.client("dynamodb", region_name=region).get_paginator("scan").paginate(TableName=table)
        out[region] = sorted((item for page in pages for item in page["Items"]), key=lambda i: i["id"]["S"])
    return out


def _users_records(env: EmulatedEnvironment) -> dict[str, list[dict[str, Any]]]:
    """A table in use: records of the user's own (one written twice), replicated everywhere."""
    writer = env.function_names[("us-east-2", "writer")]
    client = boto3.client("lambda", region_name="us-east-2")
    for item_id, ssn in (("p1", "1"), ("p2", "2"), ("p2", "22")):
        event = {"id": item_id, "record": {"name": "Ada", "ssn": ssn}}
        assert json.loads(client.invoke(FunctionName=writer, Payload=json.dumps(event).encode())["Payload"].read())[
            "ok"
        ]
    deadline = time.monotonic() + 10
    while len({json.dumps(items, sort_keys=True, default=str) for items in _tables(env).values()}) > 1:
        assert time.monotonic() < deadline, "the user's records did not replicate"
        time.sleep(0.2)
    return _tables(env)


def test_verify_reads_the_config_and_leaves_every_table_as_it_found_it(
    default_assembly: Path, served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify with no flag but a deadline (the deployment from cdk.json, as destroy reads it): it says
    first that its tamper checks fire the security alarms, then every replica holds item for item
    what it held before; the same with --no-tamper-checks, which skips exactly the checks that alter
    an item."""
    env = served(default_assembly)
    before = _users_records(env)
    assert [item["id"]["S"] for item in before["us-west-1"]] == ["p1", "p2"]
    assert main(["verify", "--deadline", "10"]) == 0
    out, err = capsys.readouterr()
    assert "WARNING" in err and "MrkToolkit-us-west-1-reader-security-refusals" in err, err
    assert "--no-tamper-checks" in err, err
    assert _tables(env) == before, "verify left the tables changed"
    clean_up = next(line for line in out.splitlines() if "clean-up" in line)
    assert clean_up.startswith("PASS") and "deleted them; none of the" in clean_up, out
    assert "tamper-us-west-1" in out and "other-us-west-1" in out, "the corrupted items are among those deleted"

    assert main(["verify", "--deadline", "10", "--no-tamper-checks"]) == 0
    out, err = capsys.readouterr()
    assert "WARNING" not in err and "no security alarm fires" in err, err
    assert _tables(env) == before, "verify --no-tamper-checks left the tables changed"
    skipped = [line.split("  ")[1].strip() for line in out.splitlines() if "skipped (--no-tamper-checks)" in line]
    assert sorted(skipped) == sorted(ALTERING), out
    assert "PASS  reader decrypts in us-west-1 after replication" in out


def test_verify_catches_an_edited_deployment(
    default_assembly: Path, served: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def pitr_off(template: dict[str, Any]) -> None:
        (table,) = resources(template, "AWS::DynamoDB::GlobalTable")
        for replica in table["Properties"]["Replicas"]:
            if replica["Region"] == "us-west-1":
                replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] = False

    def unbound(template: dict[str, Any]) -> None:
        drop_condition_keys(template, "kms:EncryptionContext:", kinds=("KeyPolicy", "PolicyDocument"))

    def unbound_and_reader_logs_unencrypted(template: dict[str, Any]) -> None:
        unbound(template)
        (logs,) = resources(template, "AWS::Logs::LogGroup", "RecordsReaderLogs")
        del logs["Properties"]["KmsKeyId"]

    edits = {
        "MrkToolkit-Table": pitr_off,
        "MrkToolkit-Keys-us-west-1": unbound,
        "MrkToolkit-Functions-us-west-1": unbound_and_reader_logs_unencrypted,
    }
    env = served(edited(default_assembly, tmp_path / "cdk.out", edits))
    before = _users_records(env)
    code = main(VERIFY)
    out = capsys.readouterr().out
    assert code == 1, out
    assert _tables(env) == before, "a failing verify cleans up too"
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any("point-in-time recovery is DISABLED on the us-west-1 replica" in line for line in fails), out
    assert any("IAM's policy simulator allowed the reader's role kms:Decrypt with" in line for line in fails), out
    assert any("the key policy lets" in line for line in fails), out
    assert any("RecordsReaderLogs1E5F709A: not encrypted with a customer-managed key" in line for line in fails), out


def test_rotate_rotates_the_primary_and_refuses_a_replica_region(
    default_assembly: Path, served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m offline rotate` unchanged against the served deployment (only the endpoint differs)."""
    served(default_assembly)
    assert main(["rotate", "--primary", "us-east-2"]) == 0
    out = capsys.readouterr().out
    assert "rotated arn:aws:kms:us-east-2:" in out and "(1 rotation(s) so far)" in out
    assert main(["rotate", "--primary", "us-west-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a replica" in err[0] and "--primary us-east-2" in err[0], err
    assert main(["rotate"]) == 0, "without flags it reads the deployment from the config, as destroy does"
    assert "(2 rotation(s) so far)" in capsys.readouterr().out
    assert main(["rotate", "-c", "mrk-toolkit:stackPrefix=Elsewhere"]) != 0
    assert "Elsewhere-Keys-us-east-2" in capsys.readouterr().err, "the config's prefix names the stack it looked for"


def test_verify_with_tenants_runs_the_tenant_job_and_leaves_the_tables_as_they_were(
    served: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`verify` on a deployment with tenants (the config says which, as deployed): the tenant checks,
    the attacks as a tenant, every tenant key's rotation N/A (an account's on-demand rotations are few),
    and the clean-up deletes every item it wrote."""
    from stacks.synthesize import synthesize
    from tests.offline.test_tenants_end_to_end import CONTEXT

    env = served(synthesize(CONTEXT, str(tmp_path / "cdk.out")))
    before = _tables(env)
    options = [f"-c{k}={v}" for k, v in CONTEXT.items()]
    code = main(["verify", "--deadline", "10", *options])
    out = capsys.readouterr().out
    assert code == 0, "\n".join(line for line in out.splitlines() if line.startswith("FAIL"))
    assert _tables(env) == before, "verify left the tables changed"
    lines = {line.split("  ")[1].strip(): line[:4] for line in out.splitlines() if line[:4] in ("PASS", "N/A ", "FAIL")}
    assert lines["tenant acme writes and reads in eu-west-1, us-east-2, us-west-1"] == "PASS", out
    assert lines["tampered item in us-west-1 is refused (tenant acme)"] == "PASS", out
    assert (
        lines["every tenant key rotates on demand, and each tenant's regions decrypt across the rotation"] == "N/A "
    ), out
    assert "FAIL" not in lines.values(), out


AURORA_CONTEXT = ["-c", f"{CONTEXT_PREFIX}store={STORE_AURORA_POSTGRESQL}"]


@pytest.fixture(scope="module")
def aurora_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize({f"{CONTEXT_PREFIX}store": STORE_AURORA_POSTGRESQL}, str(tmp_path_factory.mktemp("aurora")))


def _verify_rows(env: EmulatedEnvironment) -> dict[str, int]:
    """Per region, the rows verify's runs wrote (``verify-*``), as the master user sees them."""
    db = env.database()
    regions = (env.primary_region, *env.replica_regions)
    return {r: db.admin(f"SELECT count(*) FROM {db.table} WHERE id LIKE 'verify-%'", region=r)[0][0] for r in regions}


def test_verify_runs_against_an_aurora_deployment_and_names_the_rows_it_leaves(
    aurora_assembly: Path, served: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify of an Aurora deployment as an account holder runs it (no SQL session: the clusters are in
    isolated subnets): the functions write and read across regions, the deployed invariants are read back
    through RDS and CloudWatch, the SQL checks are N/A, and the rows it wrote are named with the statement
    that removes them (which, run as the master user, removes exactly them). An edited deployment fails."""
    env = served(aurora_assembly)
    assert main(["verify", "--deadline", "10", *AURORA_CONTEXT]) == 0
    out, err = capsys.readouterr()
    assert "no stored row is altered and no security alarm fires" in err, err
    for line in (
        "PASS  reader decrypts in us-west-1 after replication",
        "PASS  deployed: the global database holds every region's cluster, one writer, encrypted and protected",
        "N/A   the writer in us-west-1 writes through the global writer endpoint; every region reads it",
        "N/A   planted sensitive value in us-west-1 is refused",
        "PASS  deployed: every database secret in us-east-2 rotates on a schedule",
        "N/A   the writer's secret rotates on demand and the functions keep working",  # a production password
    ):
        assert any(printed.startswith(line) for printed in out.splitlines()), f"{line!r} not in:\n{out}"
    clean_up = next(line for line in out.splitlines() if "clean-up" in line)
    assert clean_up.startswith("PASS") and "stay" in clean_up, out
    statement = out.split("query editor): ", 1)[1].split(" (the secondaries follow)", 1)[0]
    left = _verify_rows(env)
    assert left[env.primary_region] > 0 and len(set(left.values())) == 1, left
    deleted = env.database().admin(statement.replace(";", " RETURNING id"))
    assert len(deleted) == left[env.primary_region], (statement, deleted)
    assert _verify_rows(env)[env.primary_region] == 0, "the printed statement left rows"


def test_verify_of_an_edited_aurora_deployment_fails_naming_it(
    aurora_assembly: Path, served: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def unprotected(template: dict[str, Any]) -> None:
        (cluster,) = resources(template, "AWS::RDS::GlobalCluster")
        cluster["Properties"]["DeletionProtection"] = False

    stack = next(
        p.name.removesuffix(".template.json")
        for p in aurora_assembly.glob("*.template.json")
        if "AWS::RDS::GlobalCluster" in p.read_text()
    )
    served(edited(aurora_assembly, tmp_path / "cdk.out", {stack: unprotected}))
    assert main(["verify", "--deadline", "10", *AURORA_CONTEXT]) == 1
    fails = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "deletion protection" in fails[0], fails
