"""Day two of the Aurora store on the emulator, as the README's "Add or remove a region (Aurora)"
block writes it, run line by line against `python -m offline up` served from this process: a
secondary region added under a running deployment (a new cluster joins the global database as a
standby and starts from a copy of its data: rows written before read there with that region's own
replica key; its writer refuses with the retryable ReadOnlyRegion), taken out again (the others
keep serving), its stacks destroyed and then the whole deployment, each listing what stays behind
with AWS CLI commands that are real ones (parsed back against the service model). The refusals
RDS makes (the writer's cluster, a deletion-protected cluster, a global cluster with members) are
tested on the emulation itself, below."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from offline.emulator.aurora import AuroraEmulation, ClusterSpec
from offline.emulator.aurora_lifecycle import AuroraLifecycle
from offline.emulator.deployment import DeployedResource, Deployment
from offline.emulator.rds_leftovers import RdsLeftovers
from offline.emulator.resource_lifecycle import StackOperationFailed
from offline.runbooks.teardown import CliCommand
from tests.offline.test_lifecycle import (  # noqa: F401 - up: a fixture
    client,
    invoke,
    readme_block,
    run_offline,
    stack_exists,
    up,
)

GLOBAL = "mrktoolkit-records"


def read_eventually(region: str, item_id: str, deadline_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while True:
        result = invoke(region, "reader", {"id": item_id})
        if result.get("ok") or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def commands_of(out: str) -> list[CliCommand]:
    """Every `aws ...` line printed, parsed back (an unknown operation or flag fails here)."""
    return [CliCommand.parse(line) for line in out.splitlines() if line.startswith("aws ")]


@pytest.mark.e2e
def test_a_secondary_region_is_added_removed_and_the_deployment_torn_down(
    up: Any,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps = readme_block("aurora-region-change")
    assert [s.split()[:4] for s in steps] == [
        ["python", "-m", "offline", "up"],
        ["python", "-m", "offline", "deploy"],
        ["python", "-m", "offline", "deploy"],
        ["python", "-m", "offline", "destroy"],
        ["python", "-m", "offline", "destroy"],
    ], "the README's Aurora region steps changed: update this test's checks between them"

    def while_up(env: Any) -> None:
        before = {f"before-{n}": {"name": f"P{n}", "ssn": f"078-05-{n:04d}"} for n in range(3)}
        for item_id, record in before.items():
            assert invoke("us-east-2", "writer", {"id": item_id, "record": record})["ok"] is True
        # 1. eu-west-1 added: a standby created from the global database, its rows there before any write.
        code, out, err = run_offline(steps[1], capsys)
        assert code == 0, err + out
        assert "replica eu-west-1 added" in out, out  # the role secrets replicated to the new region
        assert "regions now: us-east-2, us-west-1, eu-west-1" in out, out
        assert sorted(env.deployment.aurora.clusters) == ["eu-west-1", "us-east-2", "us-west-1"]
        assert env.deployment.aurora.db.server("eu-west-1").in_recovery()  # a standby: streams, refuses writes
        replica = client("kms", "eu-west-1").describe_key(KeyId="alias/mrk-toolkit/records")["KeyMetadata"]
        decisions = len(env.aws.gateway.decisions)
        for item_id, record in before.items():
            got = read_eventually("eu-west-1", item_id)
            assert got.get("ok") is True and got["record"] == record and got["read_region"] == "eu-west-1", got
        # Every records-key decrypt there (one per row; a reader retried once may add one) on eu-west-1's replica.
        kms = [
            d
            for d in env.aws.gateway.decisions[decisions:]
            if d["action"] == "kms:Decrypt" and ":key/mrk-" in d["resource"]
        ]
        assert len(kms) >= len(before) and all(d["allowed"] and d["resource"] == replica["Arn"] for d in kms), kms
        # Its writer writes at once, through the global writer endpoint over the new peering connections.
        written = invoke("eu-west-1", "writer", {"id": "from-eu", "record": {"name": "E"}})
        assert written.get("ok") is True and written["region"] == "eu-west-1", written
        assert read_eventually("us-west-1", "from-eu").get("ok") is True
        # A row written now reaches the new standby too.
        assert invoke("us-east-2", "writer", {"id": "after-add", "record": {"name": "A"}})["ok"] is True
        assert read_eventually("eu-west-1", "after-add").get("ok") is True
        # 2. eu-west-1 taken out of the config: its secret replicas go, its stacks stay until destroyed.
        code, out, err = run_offline(steps[2], capsys)
        assert code == 0, err + out
        assert "replica eu-west-1 removed" in out, out
        assert "MrkToolkit-Database-eu-west-1" in out and "python -m offline destroy --region eu-west-1" in out, out
        # 3. Its stacks deleted in order; the retained cluster listed, with the commands that detach and delete it.
        code, out, err = run_offline(steps[3], capsys)
        assert code == 0, err + out
        order = [line.split()[1] for line in out.splitlines() if line.startswith("deleted MrkToolkit")]
        assert order[:4] == [
            "MrkToolkit-Functions-eu-west-1",
            "MrkToolkit-PeerRoutes-eu-west-1",
            "MrkToolkit-Peering-eu-west-1",  # eu-west-1 sorts first: it requested both its connections
            "MrkToolkit-Database-eu-west-1",
        ], out
        assert not stack_exists("MrkToolkit-Database-eu-west-1", "eu-west-1")
        assert f"cluster {GLOBAL}-eu-west-1 in eu-west-1 (secondary" in out, out
        ops = [(c.operation, c.region) for c in commands_of(out)]
        assert ("RemoveFromGlobalCluster", "eu-west-1") in ops and ("DeleteDBCluster", "eu-west-1") in ops, ops
        assert ops.index(("RemoveFromGlobalCluster", "eu-west-1")) < ops.index(("DeleteDBCluster", "eu-west-1"))
        # Its printed commands run as printed: the retained cluster detached, its instance and it deleted.
        for command in commands_of(out):
            command.run(client)
        assert _clusters("eu-west-1") == [] and "eu-west-1" not in env.deployment.aurora.standalone
        assert _snapshots("eu-west-1") == [f"{GLOBAL}-eu-west-1-final"]
        (glob,) = client("rds", "us-east-2").describe_global_clusters()["GlobalClusters"]
        assert sorted(m["DBClusterArn"].rsplit(":", 1)[1] for m in glob["GlobalClusterMembers"]) == [
            f"{GLOBAL}-us-east-2",
            f"{GLOBAL}-us-west-1",
        ], glob
        for item_id, record in before.items():  # the others keep serving
            got = read_eventually("us-west-1", item_id)
            assert got.get("ok") is True and got["record"] == record, got
        assert invoke("us-east-2", "writer", {"id": "after-remove", "record": {"name": "R"}})["ok"] is True
        # 4. Everything: secondaries' database stacks before the primary's, networks after, keys last.
        code, out, err = run_offline(steps[4], capsys)
        assert code == 0, err + out
        order = [line.split()[1] for line in out.splitlines() if line.startswith("deleted MrkToolkit")]
        assert order.index("MrkToolkit-Database-us-west-1") < order.index("MrkToolkit-Database-us-east-2"), order
        assert order.index("MrkToolkit-Database-us-east-2") < order.index("MrkToolkit-Network-us-east-2"), order
        assert order[-1] in ("MrkToolkit-Keys-us-east-2", "MrkToolkit-Audit"), order
        commands = commands_of(out)
        ops = [c.operation for c in commands]
        detach = [i for i, op in enumerate(ops) if op == "RemoveFromGlobalCluster"]
        assert len(detach) == 2 and max(detach) < ops.index("DeleteDBInstance") < ops.index("DeleteDBCluster"), ops
        assert ops.index("DeleteDBCluster") < ops.index("DeleteGlobalCluster") < ops.index("ScheduleKeyDeletion"), ops
        assert "DeleteSecret" in ops and "RemoveRegionsFromReplication" in ops, ops
        primary_detach = commands[max(detach)]
        assert primary_detach.region == "us-east-2" and dict(primary_detach.params)["GlobalClusterIdentifier"] == GLOBAL
        # What stays behind goes with the commands printed for it, run in the printed order.
        for command in commands:
            command.run(client)
        for region in ("us-east-2", "us-west-1", "eu-west-1"):
            assert _clusters(region) == [], region
            assert client("rds", region).describe_db_instances()["DBInstances"] == [], region
        assert client("rds", "us-east-2").describe_global_clusters()["GlobalClusters"] == []
        assert _snapshots("us-east-2") == [f"{GLOBAL}-us-east-2-final"], "the final snapshots stay, as printed"
        aurora = env.deployment.aurora
        assert not aurora.clusters and not aurora.standalone and not aurora.db.servers, "no server left running"

    up(steps[0], while_up)


def _clusters(region: str) -> list[str]:
    return [c["DBClusterIdentifier"] for c in client("rds", region).describe_db_clusters()["DBClusters"]]


def _snapshots(region: str) -> list[str]:
    found = client("rds", region).describe_db_cluster_snapshots()["DBClusterSnapshots"]
    return [s["DBClusterSnapshotIdentifier"] for s in found]


# --- RDS's refusals, on the emulation ---------------------------------------------------------------
def _cluster(region: str, *, protected: bool, policy: str = "Snapshot") -> tuple[Any, DeployedResource]:
    stack = SimpleNamespace(name=f"MrkToolkit-Database-{region}", region=region)
    resource = DeployedResource(
        logical_id="Cluster",
        type="AWS::RDS::DBCluster",
        physical_id=f"{GLOBAL}-{region}",
        attributes={},
        properties={"DeletionProtection": "true" if protected else "false", "GlobalClusterIdentifier": GLOBAL},
        deletion_policy=policy,
        update_replace_policy=policy,
    )
    return stack, resource


def _emulation(writer: str, *regions: str) -> AuroraEmulation:
    aurora = AuroraEmulation()
    aurora.global_clusters[GLOBAL] = {"Engine": "aurora-postgresql"}
    for region in regions:
        aurora.clusters[region] = ClusterSpec(region, "Cluster", region == writer, "records", None)
    aurora.db = SimpleNamespace(writer_region=writer)  # type: ignore[assignment]
    return aurora


def test_a_deletion_protected_cluster_is_not_deleted() -> None:
    stack, resource = _cluster("eu-west-1", protected=True)
    with pytest.raises(StackOperationFailed, match="deletion protection is on") as refused:
        AuroraLifecycle()._check_delete_aws_rds_dbcluster(stack, resource)
    assert "aws rds modify-db-cluster --region eu-west-1 --db-cluster-identifier" in str(refused.value)
    AuroraLifecycle()._check_delete_aws_rds_dbcluster(*_cluster("eu-west-1", protected=False))


def test_the_writers_cluster_cannot_leave_while_secondaries_remain(tmp_path: Path) -> None:
    """After a switchover the writer is us-west-1: its cluster is the one refused, not the template's primary."""
    aurora = _emulation("us-west-1", "us-east-2", "us-west-1")
    deployment = Deployment(account="123456789012", assembly=None)  # type: ignore[arg-type]
    deployment.aurora = aurora
    stack, resource = _cluster("us-west-1", protected=False)
    with pytest.raises(StackOperationFailed, match=r"writer .primary.*InvalidDBClusterStateFault"):
        AuroraLifecycle()._delete_aws_rds_dbcluster(stack, resource, deployment)
    assert sorted(aurora.clusters) == ["us-east-2", "us-west-1"]  # nothing detached


def test_a_global_cluster_with_members_or_protection_is_not_deleted() -> None:
    aurora = _emulation("us-east-2", "us-east-2")
    deployment = Deployment(account="123456789012", assembly=None)  # type: ignore[arg-type]
    deployment.aurora = aurora
    stack = SimpleNamespace(name="MrkToolkit-Database-us-east-2", region="us-east-2")
    glob = DeployedResource(
        "GlobalCluster", "AWS::RDS::GlobalCluster", GLOBAL, {}, {"DeletionProtection": "true"}, "Delete", "Delete"
    )
    with pytest.raises(StackOperationFailed, match="deletion protection is on"):
        AuroraLifecycle()._check_delete_aws_rds_globalcluster(stack, glob)  # type: ignore[arg-type]
    with pytest.raises(StackOperationFailed, match=r"still has members .us-east-2."):
        AuroraLifecycle()._delete_aws_rds_globalcluster(stack, glob, deployment)  # type: ignore[arg-type]


# --- RDS's refusals of the printed commands, on what the stacks retained ----------------------------
def _retained(writer: str, *regions: str) -> RdsLeftovers:
    """Two retained clusters (protected, members of the global database), an instance each, their
    subnet groups and the protected global cluster, as `destroy` leaves them."""
    deployment = Deployment(account="123456789012", assembly=None)  # type: ignore[arg-type]
    deployment.aurora = _emulation(writer, *regions)
    for region in regions:
        cluster = f"{GLOBAL}-{region}"
        props = {"DeletionProtection": "true", "GlobalClusterIdentifier": GLOBAL, "DBSubnetGroupName": f"sg-{region}"}
        deployment.retained_rds += [
            (region, DeployedResource("Cluster", "AWS::RDS::DBCluster", cluster, {}, props, "Retain", "Retain")),
            (
                region,
                DeployedResource(
                    "Instance", "AWS::RDS::DBInstance", f"i-{region}", {}, {"DBClusterIdentifier": cluster}
                ),
            ),
            (region, DeployedResource("Subnets", "AWS::RDS::DBSubnetGroup", f"sg-{region}", {}, {})),
        ]
    glob = DeployedResource("Global", "AWS::RDS::GlobalCluster", GLOBAL, {}, {"DeletionProtection": "true"})
    deployment.retained_rds.append((regions[0], glob))
    return RdsLeftovers(deployment)


def _refused(rds: RdsLeftovers, action: str, region: str, **form: str) -> str:
    status, _, body = rds.handle(action, region, form)
    assert status.startswith("400"), (action, body)
    return body.decode().split("<Code>")[1].split("</Code>")[0]


def test_rds_refuses_the_printed_commands_out_of_order() -> None:
    """Each refusal RDS makes when the leftovers are removed in the wrong order: a protected or still
    member cluster, one with an instance, the writer detached before its secondaries, a subnet group in
    use, a protected or non-empty global cluster. Nothing is removed by a refused call."""
    rds = _retained("us-east-2", "us-east-2", "us-west-1")
    west = f"{GLOBAL}-us-west-1"
    snapshot = {"FinalDBSnapshotIdentifier": f"{west}-final"}
    assert _refused(rds, "DeleteDBCluster", "us-west-1", DBClusterIdentifier=west, **snapshot) == (
        "InvalidParameterCombination"  # deletion protection
    )
    rds.handle("ModifyDBCluster", "us-west-1", {"DBClusterIdentifier": west, "DeletionProtection": "false"})
    assert _refused(rds, "DeleteDBCluster", "us-west-1", DBClusterIdentifier=west, **snapshot) == (
        "InvalidDBClusterStateFault"  # still a member of the global database
    )
    arn = f"arn:aws:rds:us-east-2:123456789012:cluster:{GLOBAL}-us-east-2"
    assert _refused(
        rds, "RemoveFromGlobalCluster", "us-east-2", GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=arn
    ) == (
        "InvalidGlobalClusterStateFault"  # the writer, while us-west-1 is still a member
    )
    assert (
        _refused(rds, "DeleteGlobalCluster", "us-east-2", GlobalClusterIdentifier=GLOBAL)
        == "InvalidParameterCombination"
    )
    rds.handle("ModifyGlobalCluster", "us-east-2", {"GlobalClusterIdentifier": GLOBAL, "DeletionProtection": "false"})
    assert _refused(rds, "DeleteGlobalCluster", "us-east-2", GlobalClusterIdentifier=GLOBAL) == (
        "InvalidGlobalClusterStateFault"  # members remain
    )
    assert _refused(rds, "DeleteDBSubnetGroup", "us-west-1", DBSubnetGroupName="sg-us-west-1") == (
        "InvalidDBSubnetGroupStateFault"
    )
    rds.deployment.retained_rds[3][1].properties.pop("GlobalClusterIdentifier")  # as if detached
    assert _refused(rds, "DeleteDBCluster", "us-west-1", DBClusterIdentifier=west, **snapshot) == (
        "InvalidDBClusterStateFault"  # its instance is still there
    )
    assert _refused(rds, "DeleteDBCluster", "us-west-1", DBClusterIdentifier=west) == "InvalidParameterCombination"
    assert _refused(rds, "DeleteDBInstance", "us-west-1", DBInstanceIdentifier="i-nope") == "DBInstanceNotFound"
    assert len(rds.deployment.retained_rds) == 7, "nothing was removed by a refused call"


# --- the teardown order ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def three_region_aurora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stacks.synthesize import synthesize

    context = {"mrk-toolkit:store": "aurora-postgresql", "mrk-toolkit:replicaRegions": "us-west-1,eu-west-1"}
    return synthesize(context, str(tmp_path_factory.mktemp("aurora-3")))


def test_destroy_deletes_every_aurora_stack_after_those_that_depend_on_it(three_region_aurora: Path) -> None:
    """Each stack is deleted after every stack that depends on it (the assembly's graph), and the
    primary's Database stack (the global cluster, the secrets the secondaries replicate, whose
    replica keys are read from the Keys stacks by Fn::GetStackOutput) before any Keys stack."""
    from cloud_assembly.reader import load_assembly
    from offline.runbooks.teardown import deletion_waves

    stacks = load_assembly(three_region_aurora).stacks
    waves = deletion_waves("MrkToolkit", "us-east-2", ["us-west-1", "eu-west-1"], aurora=True)
    position = {name: n for n, wave in enumerate(waves) for name, _ in wave}
    assert sorted(position) == sorted(stacks)
    for name, stack in stacks.items():
        for dependency in stack.dependencies:
            assert position[name] < position[dependency], (name, dependency)
    keys = min(position[n] for n in stacks if "-Keys-" in n)
    assert position["MrkToolkit-Database-us-east-2"] < keys
    assert deletion_waves("P", "us-east-2", ["us-west-1"], only_region="eu-west-1", aurora=True) == [
        [("P-Functions-eu-west-1", "eu-west-1")],
        [("P-PeerRoutes-eu-west-1", "eu-west-1")],
        [("P-Peering-eu-west-1", "eu-west-1")],
        [("P-Database-eu-west-1", "eu-west-1")],
        [("P-Network-eu-west-1", "eu-west-1"), ("P-Keys-eu-west-1", "eu-west-1")],
    ]
