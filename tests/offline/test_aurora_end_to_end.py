"""The main job for the Aurora PostgreSQL store end to end: the aurora assembly stood up on the
emulated AWS with one real PostgreSQL server per region (the primary streaming to the others),
the real handlers under their roles; and the same assembly edited so that it should fail."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.intrinsics import UnsupportedTemplate
from offline.emulator.postgres import GlobalDatabase, server_processes
from offline.verification.checks import Report
from offline.verification.emulated import run_offline
from stacks.synthesize import synthesize

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def aurora_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize({"mrk-toolkit:store": "aurora-postgresql"}, str(tmp_path_factory.mktemp("cdk-out-aurora")))


def _run(cdk_out: Path, tmp_path: Path) -> Report:
    return run_offline(cdk_out=cdk_out, progress=lambda _line: None, log_dir=tmp_path / "logs")


def _edited(source: Path, tmp_path: Path, stack_prefix: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    target = tmp_path / "edited"
    shutil.copytree(source, target)
    (path,) = [p for p in target.glob("*.template.json") if p.name.startswith(stack_prefix)]
    template = json.loads(path.read_text())
    edit(template)
    path.write_text(json.dumps(template))
    return target


def _postgres_left() -> list[int]:
    """postgres processes of the servers this test process started (other runs may be going on)."""
    return [pid for root in GlobalDatabase.created_roots for pid in server_processes(root)]


def test_aurora_deployment_end_to_end(aurora_assembly: Path, tmp_path: Path) -> None:
    report = _run(aurora_assembly, tmp_path)

    assert report.ok, report.render()
    names = [c.name for c in report.checks]
    for name in (
        "db_setup made the table and least-privilege roles in us-east-2",
        "reader decrypts in us-west-1 after replication",
        "the writer in us-west-1 writes through the global writer endpoint; every region reads it",
        "planted sensitive value in us-west-1 is refused",
        "rolled-back row in us-west-1 is refused with min_version",
        "the reader's database role cannot write (us-east-2)",
        "deployed: every database secret in us-east-2 rotates on a schedule",
        "the writer's secret rotates on demand and the functions keep working",
        "deployed: every resource policy in us-west-1 names only its contract's principals",
        "deployed: everything at rest in us-west-1 is encrypted with a customer-managed key of us-west-1",
        "deployed: the cluster in us-west-1 is protected from deletion and backed up",
        "deployed: the discovery parameters of us-west-1 name its key, table, endpoints and secrets",
        "deployed: us-east-2 alarms on its functions and its cluster notify an encrypted topic",
        *(
            f"deployed: {role} may do exactly its contract"
            for role in (
                "the writer's role in us-west-1",
                "the reader's role in us-east-2",
                "the schema setup role in us-east-2",
                "the schema custom resource provider's role in us-east-2",
                "the secret rotation role in us-east-2",
                "the RDS enhanced monitoring role in us-west-1",
                "the VPC flow logs role in us-east-2",
            )
        ),
    ):
        assert name in names, names
    at_rest = next(c.detail for c in report.checks if c.name.startswith("deployed: everything at rest in us-west-1"))
    assert "cluster x1" in at_rest and "secret replica x2" in at_rest, at_rest
    assert _postgres_left() == [], "the demo stopped its PostgreSQL servers"


def _functions(template: dict[str, Any], handler: str) -> list[dict[str, Any]]:
    return [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == handler
    ]


def test_a_reader_given_the_writers_secret_fails_the_run(aurora_assembly: Path, tmp_path: Path) -> None:
    """The emulated IAM decides GetSecretValue: a reader pointed at a secret its role may not read
    cannot connect, and the run says so."""

    def swap(template: dict[str, Any]) -> None:
        (reader,) = _functions(template, "reader.handler")
        (writer,) = _functions(template, "writer.handler")
        reader["Environment"]["Variables"]["DB_SECRET_ARN"] = writer["Environment"]["Variables"]["DB_SECRET_ARN"]

    report = _run(_edited(aurora_assembly, tmp_path, "MrkToolkit-Functions-us-west-1", swap), tmp_path)

    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert "reader decrypts in us-west-1 after replication" in failed, report.render()
    assert "secretsmanager:GetSecretValue" in failed["reader decrypts in us-west-1 after replication"]


GLOBAL_WRITE = "the writer in us-west-1 writes through the global writer endpoint; every region reads it"


def _without_peer_ingress(template: dict[str, Any]) -> None:
    """The primary's cluster security group no longer admits us-west-1's VPC range."""
    (group,) = [
        r
        for lid, r in template["Resources"].items()
        if lid.startswith("NetworkDatabaseSecurityGroup") and r["Type"] == "AWS::EC2::SecurityGroup"
    ]
    group["Properties"].pop("SecurityGroupIngress")


def _without_return_route(template: dict[str, Any]) -> None:
    """One of the primary's route tables loses its route back to us-west-1."""
    routes = sorted(lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::EC2::Route")
    del template["Resources"][routes[0]]


@pytest.mark.parametrize(
    ("stack", "edit"),
    [
        ("MrkToolkit-Network-us-east-2", _without_peer_ingress),
        ("MrkToolkit-PeerRoutes-us-east-2", _without_return_route),
    ],
)
def test_without_a_path_to_the_primary_a_secondarys_writer_is_unavailable(
    aurora_assembly: Path, tmp_path: Path, stack: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """Reachability is read from the templates: with the cluster's ingress rule or a route back gone, the
    us-west-1 writer's connection through the global writer endpoint fails as a timeout does
    (DatabaseUnavailable, retryable), nothing is written, and the primary's own writer still writes."""
    report = _run(_edited(aurora_assembly, tmp_path, stack, edit), tmp_path)

    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert GLOBAL_WRITE in failed, report.render()
    assert "DatabaseUnavailable" in failed[GLOBAL_WRITE], failed[GLOBAL_WRITE]
    assert "writer encrypts and writes in us-east-2" not in failed, report.render()
    assert _postgres_left() == []


def test_secrets_without_a_customer_managed_key_of_their_region_fail_the_run(
    aurora_assembly: Path, tmp_path: Path
) -> None:
    """The master user's secret on the AWS managed key, and the writer's secret replicated to us-west-1
    with the primary region's key: the read-back of what is at rest names both (issue 19, item 2)."""

    def weakened(template: dict[str, Any]) -> None:
        secrets = {lid: r["Properties"] for lid, r in template["Resources"].items() if "SecretsManager" in r["Type"]}
        del next(p for lid, p in secrets.items() if "Master" in lid)["KmsKeyId"]
        writer = next(p for lid, p in secrets.items() if "Writer" in lid)
        writer["ReplicaRegions"][0]["KmsKeyId"] = writer["KmsKeyId"]

    report = _run(_edited(aurora_assembly, tmp_path, "MrkToolkit-Database-us-east-2", weakened), tmp_path)
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    east = failed["deployed: everything at rest in us-east-2 is encrypted with a customer-managed key of us-east-2"]
    assert "secret arn:aws:secretsmanager:us-east-2:123456789012:secret:MrkToolkit/aurora/records_admin-" in east
    assert "not encrypted with a customer-managed key (no KmsKeyId: the AWS managed key aws/secretsmanager)" in east
    west = failed["deployed: everything at rest in us-west-1 is encrypted with a customer-managed key of us-west-1"]
    assert (
        "secret replica arn:aws:secretsmanager:us-west-1:123456789012:secret:MrkToolkit/aurora/records_writer-" in west
    )
    assert ", a key of us-east-2, not of us-west-1" in west, west
    assert _postgres_left() == [], "the run stopped its PostgreSQL servers"


def test_a_secondary_cluster_encrypted_with_another_regions_key_is_refused(
    aurora_assembly: Path, tmp_path: Path
) -> None:
    def foreign_key(template: dict[str, Any]) -> None:
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::RDS::DBCluster":
                resource["Properties"]["KmsKeyId"] = "arn:aws:kms:us-east-2:123456789012:key/another-regions-key"

    edited = _edited(aurora_assembly, tmp_path, "MrkToolkit-Database-us-west-1", foreign_key)
    with pytest.raises(UnsupportedTemplate, match="not a key of the cluster's region us-west-1"):
        _run(edited, tmp_path)
    assert _postgres_left() == [], "a failed deployment stops the servers it started"


def test_a_cluster_with_write_forwarding_is_refused_as_not_emulated(aurora_assembly: Path, tmp_path: Path) -> None:
    """Write forwarding is not offered (README): a template asking for it is not deployed as if it worked."""

    def forwarding(template: dict[str, Any]) -> None:
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::RDS::DBCluster":
                resource["Properties"]["EnableGlobalWriteForwarding"] = True

    edited = _edited(aurora_assembly, tmp_path, "MrkToolkit-Database-us-west-1", forwarding)
    with pytest.raises(UnsupportedTemplate, match="EnableGlobalWriteForwarding"):
        _run(edited, tmp_path)
    assert _postgres_left() == [], "a failed deployment stops the servers it started"


def test_an_unprotected_cluster_and_a_missing_lag_alarm_fail_the_run(aurora_assembly: Path, tmp_path: Path) -> None:
    """The read-back of the deployed clusters (RDS) and alarms (CloudWatch) names what is wrong."""

    def unprotected(template: dict[str, Any]) -> None:
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::RDS::DBCluster":
                resource["Properties"]["DeletionProtection"] = False
                resource["Properties"]["BackupRetentionPeriod"] = 1

    def no_lag_alarm(template: dict[str, Any]) -> None:
        resources = template["Resources"]
        (lid,) = [
            lid
            for lid, r in resources.items()
            if r["Type"] == "AWS::CloudWatch::Alarm"
            and r["Properties"].get("MetricName") == "AuroraGlobalDBReplicationLag"
        ]
        del resources[lid]

    def unprotected_global(template: dict[str, Any]) -> None:
        (glob,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::RDS::GlobalCluster"]
        glob["Properties"]["DeletionProtection"] = False

    def reader_endpoint_elsewhere(template: dict[str, Any]) -> None:
        (parameter,) = [
            r["Properties"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::SSM::Parameter" and r["Properties"]["Name"].endswith("/db-reader-endpoint")
        ]
        parameter["Value"] = "elsewhere.example.com"

    edited = _edited(aurora_assembly, tmp_path, "MrkToolkit-Database-us-west-1", unprotected)
    for stack, edit in (
        ("MrkToolkit-Functions-us-east-2", no_lag_alarm),
        ("MrkToolkit-Database-us-east-2", unprotected_global),
        ("MrkToolkit-Functions-us-west-1", reader_endpoint_elsewhere),
    ):
        (path,) = [p for p in edited.glob("*.template.json") if p.name.startswith(stack)]
        template = json.loads(path.read_text())
        edit(template)
        path.write_text(json.dumps(template))

    report = _run(edited, tmp_path)
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    cluster = failed["deployed: the cluster in us-west-1 is protected from deletion and backed up"]
    assert "deletion protection is off" in cluster and "backups are kept 1 day(s)" in cluster, cluster
    alarms = failed["deployed: us-east-2 alarms on its functions and its cluster notify an encrypted topic"]
    assert "AuroraGlobalDBReplicationLag of mrktoolkit-records-us-east-2" in alarms, alarms
    assert "deployed: the cluster in us-east-2 is protected from deletion and backed up" not in failed
    glob = failed["deployed: the global database holds every region's cluster, one writer, encrypted and protected"]
    assert glob == "global cluster mrktoolkit-records: deletion protection is off", glob
    discovery = failed["deployed: the discovery parameters of us-west-1 name its key, table, endpoints and secrets"]
    assert discovery.startswith(
        "/MrkToolkit/us-west-1/db-reader-endpoint is 'elsewhere.example.com', the reader function uses '"
    ), discovery
    assert "deployed: the discovery parameters of us-east-2 name its key, table, endpoints and secrets" not in failed
    assert _postgres_left() == []
