"""What the Aurora store's deployment must hold, read back through the AWS APIs (the same code on
the emulated AWS and on an account): each region's cluster protected from deletion and backed up
(RDS DescribeDBClusters), and each region's alarms on its cluster, its functions and their
database refusals (CloudWatch DescribeAlarms, through offline/verification/signals.py). The
clusters are those the deployed stacks hold (CloudFormation ListStackResources), never a list
written here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

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


def _bind(fn: Callable[[str], str], region: str) -> Callable[[], str]:
    return lambda: fn(region)
