"""What the Aurora store's deployment must hold, read back through the AWS APIs (the same code on
the emulated AWS and on an account): each region's cluster protected from deletion and backed up
(RDS DescribeDBClusters), the global database's members and writer (DescribeGlobalClusters), and
each region's alarms on its cluster, its functions and their
database refusals (CloudWatch DescribeAlarms, through offline/verification/signals.py). The
clusters are those the deployed stacks hold (CloudFormation ListStackResources), never a list
written here."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from lambda_src.record_crypto.settings import (
    DATABASE_DISCOVERY_PARAMETERS,
    DISCOVERY_PARAMETERS,
    ENV_DB_HOST,
    ENV_DB_NAME,
    ENV_DB_PORT,
    ENV_DB_SECRET_ARN,
    ENV_MRK_ARN,
    ENV_TABLE_NAME,
    PARAM_DB_NAME,
    PARAM_DB_PORT,
    PARAM_DB_READER_ENDPOINT,
    PARAM_DB_READER_SECRET_ARN,
    PARAM_DB_WRITER_ENDPOINT,
    PARAM_DB_WRITER_SECRET_ARN,
    PARAM_RECORD_KEY_ARN,
    PARAM_RECORD_OPTIONS,
    PARAM_TABLE_NAME,
    STORE_AURORA_POSTGRESQL,
    discovery_path,
)
from offline.verification.checks import NamedCheck
from offline.verification.resources import deployed_stack_resources

# Aurora's own minimum is 1 day; the toolkit deploys 7 to 35 (auroraBackupRetentionDays).
MIN_BACKUP_RETENTION_DAYS = 7


def deployed_clusters(client: Callable[[str, str], Any], stack_prefix: str, region: str) -> list[str]:
    """The identifiers of the RDS clusters the deployed stacks of ``region`` hold."""
    return [
        r["PhysicalResourceId"]
        for _, r in deployed_stack_resources(client, stack_prefix, region)
        if r["ResourceType"] == "AWS::RDS::DBCluster"
    ]


def cluster_checks(client: Callable[[str, str], Any], stack_prefix: str, regions: tuple[str, ...]) -> list[NamedCheck]:
    def region_check(region: str) -> str:
        names = deployed_clusters(client, stack_prefix, region)
        assert len(names) == 1, f"{len(names)} clusters deployed in {region}: {names}"
        (cluster,) = client("rds", region).describe_db_clusters(DBClusterIdentifier=names[0])["DBClusters"]
        problems = []
        if not cluster.get("DeletionProtection"):
            problems.append("deletion protection is off")
        days = int(cluster.get("BackupRetentionPeriod") or 0)
        if days < MIN_BACKUP_RETENTION_DAYS:
            problems.append(f"backups are kept {days} day(s), fewer than {MIN_BACKUP_RETENTION_DAYS}")
        assert not problems, f"cluster {names[0]} in {region}: " + "; ".join(problems)
        return f"cluster {names[0]}: deletion protection on, backups kept {days} days"

    return [
        (f"deployed: the cluster in {region} is protected from deletion and backed up", _bind(region_check, region))
        for region in regions
    ]


def global_cluster_check(
    client: Callable[[str, str], Any], stack_prefix: str, regions: tuple[str, ...], primary: str
) -> NamedCheck:
    """The global database as RDS reports it (DescribeGlobalClusters): one global cluster holding every
    region's deployed cluster, exactly one of them the writer, encrypted, protected from deletion, with a
    global writer endpoint (which always names the current writer). Where the writer is now is reported,
    not required: after a switchover it is no longer the configured primary region."""

    def run() -> str:
        arns = {}
        for region in regions:
            names = deployed_clusters(client, stack_prefix, region)
            assert len(names) == 1, f"{len(names)} clusters deployed in {region}: {names}"
            (cluster,) = client("rds", region).describe_db_clusters(DBClusterIdentifier=names[0])["DBClusters"]
            arns[cluster["DBClusterArn"]] = region
        found = [
            g
            for g in client("rds", primary).describe_global_clusters()["GlobalClusters"]
            if {m["DBClusterArn"] for m in g.get("GlobalClusterMembers", [])} & set(arns)
        ]
        assert len(found) == 1, f"{len(found)} global clusters hold the deployed clusters"
        (glob,) = found
        members = {m["DBClusterArn"]: m for m in glob.get("GlobalClusterMembers", [])}
        problems = [f"the cluster of {region} is not a member" for arn, region in arns.items() if arn not in members]
        writers = [arns.get(arn, arn) for arn, m in members.items() if m.get("IsWriter")]
        if len(writers) != 1:
            problems.append(f"{len(writers)} writers: {writers}")
        if not glob.get("StorageEncrypted"):
            problems.append("storage is not encrypted")
        if not glob.get("DeletionProtection"):
            problems.append("deletion protection is off")
        if not glob.get("Endpoint"):
            problems.append("no global writer endpoint")
        assert not problems, f"global cluster {glob['GlobalClusterIdentifier']}: " + "; ".join(problems)
        moved = "" if writers[0] == primary else f" (not the configured primary {primary}: switched over)"
        return (
            f"{glob['GlobalClusterIdentifier']}: {len(members)} member clusters ({', '.join(sorted(arns.values()))}), "
            f"writer in {writers[0]}{moved}, encrypted, protected; writer endpoint {glob['Endpoint']}"
        )

    return ("deployed: the global database holds every region's cluster, one writer, encrypted and protected", run)


def global_writer(client: Callable[[str, str], Any], region: str) -> tuple[str, str]:
    """(the region of the global database's writer now, its global writer endpoint), as RDS reports them."""
    (glob,) = client("rds", region).describe_global_clusters()["GlobalClusters"]
    (writer,) = [m["DBClusterArn"] for m in glob["GlobalClusterMembers"] if m.get("IsWriter")]
    return writer.split(":")[3], str(glob.get("Endpoint", ""))


def clusters_by_region(
    client: Callable[[str, str], Any], stack_prefix: str, regions: tuple[str, ...]
) -> Callable[[], Mapping[str, str]]:
    """Region -> its deployed cluster, read when a check first asks (the deployment stands by then)."""
    found: dict[str, str] = {}

    def read() -> Mapping[str, str]:
        if not found:
            for region in regions:
                names = deployed_clusters(client, stack_prefix, region)
                found[region] = names[0] if names else ""
        return found

    return read


# Each database parameter and what the region's functions use for it: (parameter, function kind, variable).
DISCOVERED_AS_USED = (
    (PARAM_RECORD_KEY_ARN, "writer", ENV_MRK_ARN),
    (PARAM_TABLE_NAME, "writer", ENV_TABLE_NAME),
    (PARAM_DB_WRITER_ENDPOINT, "writer", ENV_DB_HOST),
    (PARAM_DB_READER_ENDPOINT, "reader", ENV_DB_HOST),
    (PARAM_DB_PORT, "writer", ENV_DB_PORT),
    (PARAM_DB_NAME, "writer", ENV_DB_NAME),
    (PARAM_DB_WRITER_SECRET_ARN, "writer", ENV_DB_SECRET_ARN),
    (PARAM_DB_READER_SECRET_ARN, "reader", ENV_DB_SECRET_ARN),
)


def discovery_checks(
    client: Callable[[str, str], Any],
    stack_prefix: str,
    regions: tuple[str, ...],
    function_names: Mapping[tuple[str, str], str],
) -> list[NamedCheck]:
    """Each region's discovery parameters (README "Discovery") read back: all of them, the Aurora store named,
    and each value the one the region's deployed functions use (key, table, endpoints, port, database, secrets),
    so that an application that discovers the deployment reaches what the functions reach."""

    def region_check(region: str) -> str:
        path = discovery_path(stack_prefix, region)
        pages = client("ssm", region).get_paginator("get_parameters_by_path").paginate(Path=path)
        got = {str(p["Name"]).rsplit("/", 1)[1]: str(p["Value"]) for page in pages for p in page["Parameters"]}
        names = (*DISCOVERY_PARAMETERS, *DATABASE_DISCOVERY_PARAMETERS)
        missing = [f"{path}/{name}" for name in names if name not in got]
        assert not missing, f"missing in {region}: {', '.join(missing)} (an application cannot discover the deployment)"
        store = json.loads(got[PARAM_RECORD_OPTIONS]).get("store")
        assert store == STORE_AURORA_POSTGRESQL, f"{path}/{PARAM_RECORD_OPTIONS} names the store {store!r}"
        used = {
            kind: client("lambda", region)
            .get_function_configuration(FunctionName=function_names[(region, kind)])
            .get("Environment", {})
            .get("Variables", {})
            for kind in ("writer", "reader")
        }
        wrong = [
            f"{path}/{name} is {got[name]!r}, the {kind} function uses {used[kind].get(variable)!r}"
            for name, kind, variable in DISCOVERED_AS_USED
            if got[name] != str(used[kind].get(variable))
        ]
        assert not wrong, "; ".join(wrong)
        return f"{path}: {len(got)} parameters, each the value the {region} functions use"

    return [
        (f"deployed: the discovery parameters of {region} name its key, table, endpoints and secrets",
         _bind(region_check, region))
        for region in regions
    ]  # fmt: skip


def _bind(fn: Callable[[str], str], region: str) -> Callable[[], str]:
    return lambda: fn(region)
