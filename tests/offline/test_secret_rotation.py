"""Secret rotation of the Aurora store on the real PostgreSQL servers (README "Secret rotation"):
the RotationSchedule read back, RotateSecret running the deployed rotation function's four steps
under write load through the deployed functions, the old password refused afterwards, what
Secrets Manager refuses, and what the reader's role cannot do."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError

from lambda_src.record_crypto.settings import ENV_DB_SECRET_ARN, READER_ROLE, WRITER_ROLE
from offline.emulator.secret_rotation import STEPS
from offline.verification.failover_drill import PRIMARY, DrillWorld, drill_world

pytestmark = pytest.mark.e2e
SECONDARY = "us-west-1"


@pytest.fixture(scope="module")
def world() -> Iterator[DrillWorld]:
    with drill_world(context={"mrk-toolkit:replicaRegions": SECONDARY}) as stood:
        yield stood


def _secret_arn(world: DrillWorld, kind: str, region: str = PRIMARY) -> str:
    return world.env.deployment.function(region, kind).environment[ENV_DB_SECRET_ARN]


def _rotation_function(world: DrillWorld) -> str:
    return world.env.deployment.function(PRIMARY, "rotation").arn


def _secrets_as(world: DrillWorld, kind: str, region: str = PRIMARY) -> Any:
    """A Secrets Manager client with the credentials of the deployed ``kind`` function's role."""
    aws = world.env.aws
    creds = aws.credentials_for(world.env.deployment.function(region, kind).role_arn)
    return boto3.client(
        "secretsmanager",
        region_name=region,
        endpoint_url=aws.endpoint_url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def _logs_in(world: DrillWorld, value: dict[str, Any]) -> bool:
    try:
        with psycopg.connect(
            host=value["host"],
            port=value["port"],
            dbname=value["dbname"],
            user=value["username"],
            password=value["password"],
            connect_timeout=5,
        ):
            return True
    except psycopg.OperationalError:
        return False


def test_the_schedule_is_deployed_and_read_back(world: DrillWorld) -> None:
    manager = world.env.client("secretsmanager", PRIMARY)
    function = _rotation_function(world)
    statements = json.loads(world.env.client("lambda", PRIMARY).get_policy(FunctionName=function)["Policy"])
    sources = {s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in statements["Statement"]}
    for kind in ("writer", "reader"):
        described = manager.describe_secret(SecretId=_secret_arn(world, kind))
        assert described["RotationEnabled"] is True, described
        assert described["RotationLambdaARN"] == function
        assert described["RotationRules"]["AutomaticallyAfterDays"] == 30
        assert described["ARN"] in sources
        value = json.loads(manager.get_secret_value(SecretId=described["ARN"])["SecretString"])
        assert {"host", "port", "dbname", "engine", "username", "password"} <= set(value), sorted(value)
        assert value["engine"] == "postgres"
    assert all(s["Principal"] == {"Service": "secretsmanager.amazonaws.com"} for s in statements["Statement"])
    assert len(statements["Statement"]) == 3  # master, writer, reader: one permission per secret ARN


def test_rotation_under_write_load_loses_nothing(world: DrillWorld) -> None:
    """The writer's and the reader's secrets rotated while the deployed writer writes and the reader
    reads, each role's sessions ended over and over (as restarts and idle timeouts end them), so
    the functions log in again during and after every step: no write lost, no caller sees a
    non-retryable error, and the old passwords no longer log in."""
    manager = world.env.client("secretsmanager", PRIMARY)
    db = world.env.database()
    arns = {kind: _secret_arn(world, kind) for kind in ("writer", "reader")}
    old = {k: json.loads(manager.get_secret_value(SecretId=a)["SecretString"]) for k, a in arns.items()}
    world.write(PRIMARY, f"rot-{world.tag}-warm")
    results: list[tuple[str, dict[str, Any]]] = []
    reads: list[Any] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            item_id = f"rot-{world.tag}-{i}"
            results.append((item_id, world.write(PRIMARY, item_id, i)))
            reads.append(world.read(PRIMARY, f"rot-{world.tag}-warm").result)

    def end_sessions() -> None:
        while not stop.is_set():
            db.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN (%s, %s)",
                WRITER_ROLE,
                READER_ROLE,
            )
            # Every 0.2 s: several times per rotation step. At 0.05 s on a loaded machine (load 6+) a step's own
            # session (single-user rotation logs in as the role) was ended three times in a row and the
            # emulated Secrets Manager gave up, as it does after ATTEMPTS failures: a test of the load, not of
            # the rotation.
            time.sleep(0.2)

    threads = [threading.Thread(target=load, daemon=True), threading.Thread(target=end_sessions, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        rotated = {kind: manager.rotate_secret(SecretId=arn)["VersionId"] for kind, arn in arns.items()}
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    acked = [item_id for item_id, r in results if r.get("ok")]
    refused = [r["error"] for _, r in results if not r.get("ok")] + [r["error"] for r in reads if not r.get("ok")]
    assert len(acked) >= 5, (len(results), refused[:3])
    assert not [e for e in refused if not e.get("retryable")], refused[:5]
    stored = {row[0] for row in db.admin(f"SELECT id FROM {db.table} WHERE id LIKE %s", f"rot-{world.tag}-%")}
    assert set(acked) <= stored, sorted(set(acked) - stored)[:5]
    for kind, arn in arns.items():
        stages = manager.describe_secret(SecretId=arn)["VersionIdsToStages"]
        assert "AWSCURRENT" in stages[rotated[kind]], stages
        new = json.loads(manager.get_secret_value(SecretId=arn)["SecretString"])
        assert new["password"] != old[kind]["password"]
        assert _logs_in(world, new), f"the rotated {kind} password logs in"
        assert not _logs_in(world, old[kind]), f"the old {kind} password no longer logs in"
    # The secondary region's functions read the secret's replica: the rotated value, and they work.
    world.env.database().replicated()
    assert world.read(SECONDARY, acked[-1]).result.get("ok")


def test_secrets_manager_refuses_a_rotation_in_progress(world: DrillWorld) -> None:
    manager = world.env.client("secretsmanager", PRIMARY)
    arn = _secret_arn(world, "reader")
    current = json.loads(manager.get_secret_value(SecretId=arn)["SecretString"])
    pending = manager.put_secret_value(SecretId=arn, SecretString=json.dumps(current), VersionStages=["AWSPENDING"])[
        "VersionId"
    ]
    try:
        with pytest.raises(ClientError) as refused:
            manager.rotate_secret(SecretId=arn)
        assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
        assert "previous rotation isn't complete" in str(refused.value)
    finally:
        manager.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=pending)
    replica = world.env.client("secretsmanager", SECONDARY)
    with pytest.raises(ClientError) as on_replica:
        replica.rotate_secret(SecretId=_secret_arn(world, "reader", SECONDARY))
    assert on_replica.value.response["Error"]["Code"] == "InvalidRequestException"


def test_the_reader_role_cannot_rotate_or_read_the_writers_secret(world: DrillWorld) -> None:
    as_reader = _secrets_as(world, "reader")
    writer_secret = _secret_arn(world, "writer")
    for attempt in (
        lambda: as_reader.rotate_secret(SecretId=writer_secret),
        lambda: as_reader.rotate_secret(SecretId=_secret_arn(world, "reader")),  # not even its own
        lambda: as_reader.get_secret_value(SecretId=writer_secret),
        lambda: as_reader.put_secret_value(SecretId=writer_secret, SecretString="{}"),
        lambda: as_reader.update_secret_version_stage(SecretId=writer_secret, VersionStage="AWSCURRENT"),
    ):
        with pytest.raises(ClientError) as denied:
            attempt()
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException", denied.value
    # Nor invoke the rotation function itself (IAM's decision on its policies, as AWS would simulate it).
    simulated = world.env.client("iam", PRIMARY).simulate_principal_policy(
        PolicySourceArn=world.env.deployment.function(PRIMARY, "reader").role_arn,
        ActionNames=["lambda:InvokeFunction", "secretsmanager:RotateSecret", "secretsmanager:PutSecretValue"],
        ResourceArns=[_rotation_function(world), writer_secret],
    )["EvaluationResults"]
    assert simulated and all(r["EvalDecision"] != "allowed" for r in simulated), simulated
    # The rotation function's role may rotate exactly the database secrets' versions, and no RotateSecret.
    as_rotation = _secrets_as(world, "rotation")
    assert as_rotation.describe_secret(SecretId=writer_secret)["RotationEnabled"] is True
    with pytest.raises(ClientError) as denied:
        as_rotation.rotate_secret(SecretId=writer_secret)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_each_step_is_the_rotation_functions(world: DrillWorld) -> None:
    """The function refuses a token that is not staged AWSPENDING, and a rotation's steps are the four."""
    assert STEPS == ("createSecret", "setSecret", "testSecret", "finishSecret")
    reply = world.env.invoke(
        PRIMARY,
        "rotation",
        {"SecretId": _secret_arn(world, "writer"), "ClientRequestToken": "not-a-staged-version", "Step": "setSecret"},
    )
    assert reply.function_error, reply
