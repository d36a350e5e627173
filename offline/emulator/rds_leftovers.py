"""EMULATION of what RDS does with an Aurora store's resources once CloudFormation has let go of them
(DeletionPolicy Retain: the stacks deleted, the clusters, their instances, the global cluster and the
subnet groups still there, running and billed), so that the commands `destroy` prints for them
(offline/runbooks/teardown.py) run against `python -m offline up` as they run on an account, RDS's
refusals included. Served by the gateway for the administrator, beside the describe calls
(offline/emulator/served.py):

* ``ModifyDBCluster`` / ``ModifyGlobalCluster``: ``DeletionProtection``;
* ``RemoveFromGlobalCluster``: a secondary leaves the global database (it stops streaming and becomes a
  standalone, writable cluster); the writer's cluster only once no other member remains
  (InvalidGlobalClusterStateFault), as the Aurora user guide orders it: secondaries first;
* ``DeleteDBInstance``;
* ``DeleteDBCluster``: refused while deletion protection is on (InvalidParameterCombination), while it
  is a member of a global database or still has an instance (InvalidDBClusterStateFault); its server
  stopped and its storage removed; the final snapshot recorded (``DescribeDBClusterSnapshots``,
  ``DeleteDBClusterSnapshot``);
* ``DeleteGlobalCluster``: refused while protected (InvalidParameterCombination) or while it has a
  member (InvalidGlobalClusterStateFault);
* ``DeleteDBSubnetGroup``: refused while a cluster still uses it (InvalidDBSubnetGroupStateFault).

The resources are those deployed (a stack's) and those retained (``Deployment.retained_rds``, kept by
the provisioner when a DeletionPolicy or UpdateReplacePolicy leaves one in place). Error codes are
RDS's; the messages are close to RDS's, not copies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from offline.emulator.deployment import DeployedResource, Deployment

Response = tuple[str, list[tuple[str, str]], bytes]
_RDS = "http://rds.amazonaws.com/doc/2014-10-31/"
CLUSTER, INSTANCE, GLOBAL, SUBNETS = (
    "AWS::RDS::DBCluster",
    "AWS::RDS::DBInstance",
    "AWS::RDS::GlobalCluster",
    "AWS::RDS::DBSubnetGroup",
)


class RdsFault(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def rds_resources(deployment: Deployment) -> list[tuple[str, DeployedResource]]:
    """(region, resource) of every RDS resource there is: those of the deployed stacks, then the retained."""
    live = [
        (stack.region, r)
        for stack in deployment.stacks.values()
        for r in stack.resources.values()
        if r.type.startswith("AWS::RDS::")
    ]
    return live + list(deployment.retained_rds)


def _protected(resource: DeployedResource) -> bool:
    return str(resource.properties.get("DeletionProtection", "false")).lower() == "true"


class RdsLeftovers:
    """The calls above, on one deployment."""

    ACTIONS = frozenset(
        {
            "ModifyDBCluster",
            "ModifyGlobalCluster",
            "RemoveFromGlobalCluster",
            "DeleteDBInstance",
            "DeleteDBCluster",
            "DeleteGlobalCluster",
            "DeleteDBSubnetGroup",
            "DescribeDBClusterSnapshots",
            "DeleteDBClusterSnapshot",
        }
    )

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def handle(self, action: str, region: str, form: dict[str, str]) -> Response:
        handler: Callable[[str, dict[str, str]], str] = getattr(self, "_" + action)
        try:
            result = handler(region, form)
        except RdsFault as fault:
            return _error(fault.code, str(fault))
        return _xml(action, f"<{action}Result>{result}</{action}Result>")

    # --- lookups -------------------------------------------------------------------------------
    def _find(self, kind: str, region: str | None, identifier: str, fault: str) -> DeployedResource:
        for r_region, resource in rds_resources(self.deployment):
            arn = str(resource.attributes.get("DBClusterArn", ""))
            if resource.type == kind and region in (None, r_region) and identifier in (resource.physical_id, arn):
                return resource
            if kind == CLUSTER and resource.type == kind and identifier.endswith(f":cluster:{resource.physical_id}"):
                return resource
        raise RdsFault(fault, f"{kind.rsplit('::', 1)[1]} {identifier} not found.")

    def _members(self, global_id: str) -> list[tuple[str, DeployedResource]]:
        return [
            (region, r)
            for region, r in rds_resources(self.deployment)
            if r.type == CLUSTER and r.properties.get("GlobalClusterIdentifier") == global_id
        ]

    def _forget(self, resource: DeployedResource) -> None:
        retained = self.deployment.retained_rds
        self.deployment.retained_rds = [(g, r) for g, r in retained if r is not resource]
        for stack in self.deployment.stacks.values():  # deleted from under its stack: CloudFormation sees drift
            if stack.resources.get(resource.logical_id) is resource:
                del stack.resources[resource.logical_id]

    # --- clusters ------------------------------------------------------------------------------
    def _ModifyDBCluster(self, region: str, form: dict[str, str]) -> str:
        cluster = self._find(CLUSTER, region, form["DBClusterIdentifier"], "DBClusterNotFoundFault")
        if "DeletionProtection" in form:
            cluster.properties["DeletionProtection"] = form["DeletionProtection"].lower()
        return _cluster_xml(cluster)

    def _RemoveFromGlobalCluster(self, region: str, form: dict[str, str]) -> str:
        global_id = form["GlobalClusterIdentifier"]
        glob = self._find(GLOBAL, None, global_id, "GlobalClusterNotFoundFault")
        cluster = self._find(CLUSTER, region, form["DbClusterIdentifier"], "DBClusterNotFoundFault")
        members = self._members(global_id)
        if cluster not in [r for _, r in members]:
            raise RdsFault("GlobalClusterNotFoundFault", f"{cluster.physical_id} is not a member of {global_id}")
        aurora = self.deployment.aurora
        writer = aurora.writer_of_global() if aurora is not None else None
        if region == writer and len(members) > 1:
            others = ", ".join(r.physical_id for _, r in members if r is not cluster)
            raise RdsFault(
                "InvalidGlobalClusterStateFault",
                f"{cluster.physical_id} is the writer (primary) of global cluster {global_id}; remove its "
                f"secondaries first ({others})",
            )
        if aurora is not None:
            aurora.detach(region)
        cluster.properties.pop("GlobalClusterIdentifier", None)
        return _global_xml(glob)

    def _DeleteDBCluster(self, region: str, form: dict[str, str]) -> str:
        cluster = self._find(CLUSTER, region, form["DBClusterIdentifier"], "DBClusterNotFoundFault")
        snapshot = form.get("FinalDBSnapshotIdentifier")
        if not snapshot and form.get("SkipFinalSnapshot", "false").lower() != "true":
            raise RdsFault(
                "InvalidParameterCombination", "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is true"
            )
        if _protected(cluster):
            raise RdsFault(
                "InvalidParameterCombination", "Cannot delete protected Cluster, please disable deletion protection"
            )
        if cluster.properties.get("GlobalClusterIdentifier"):
            raise RdsFault(
                "InvalidDBClusterStateFault",
                f"This cluster is a part of global cluster {cluster.properties['GlobalClusterIdentifier']}, "
                "please remove it from the global cluster first",
            )
        instances = [
            r.physical_id
            for _, r in rds_resources(self.deployment)
            if r.type == INSTANCE and r.properties.get("DBClusterIdentifier") == cluster.physical_id
        ]
        if instances:
            raise RdsFault(
                "InvalidDBClusterStateFault",
                "Cluster cannot be deleted, it still contains DB instances in non-deleting state "
                f"({', '.join(instances)})",
            )
        aurora = self.deployment.aurora
        if aurora is not None:
            aurora.delete_standalone(region, snapshot)
        self._forget(cluster)
        return _cluster_xml(cluster)

    def _DeleteDBInstance(self, region: str, form: dict[str, str]) -> str:
        instance = self._find(INSTANCE, region, form["DBInstanceIdentifier"], "DBInstanceNotFound")
        self._forget(instance)
        return f"<DBInstance><DBInstanceIdentifier>{escape(instance.physical_id)}</DBInstanceIdentifier></DBInstance>"

    # --- the global cluster, subnet groups, snapshots ---------------------------------------------
    def _ModifyGlobalCluster(self, region: str, form: dict[str, str]) -> str:
        glob = self._find(GLOBAL, None, form["GlobalClusterIdentifier"], "GlobalClusterNotFoundFault")
        if "DeletionProtection" in form:
            glob.properties["DeletionProtection"] = form["DeletionProtection"].lower()
        return _global_xml(glob)

    def _DeleteGlobalCluster(self, region: str, form: dict[str, str]) -> str:
        glob = self._find(GLOBAL, None, form["GlobalClusterIdentifier"], "GlobalClusterNotFoundFault")
        if _protected(glob):
            raise RdsFault(
                "InvalidParameterCombination",
                f"Cannot delete protected global cluster {glob.physical_id}, please disable deletion protection",
            )
        members = self._members(glob.physical_id)
        if members:
            raise RdsFault(
                "InvalidGlobalClusterStateFault",
                f"Global cluster {glob.physical_id} is not empty: {', '.join(r.physical_id for _, r in members)}",
            )
        if self.deployment.aurora is not None:
            self.deployment.aurora.global_clusters.pop(glob.physical_id, None)
        self._forget(glob)
        return _global_xml(glob)

    def _DeleteDBSubnetGroup(self, region: str, form: dict[str, str]) -> str:
        group = self._find(SUBNETS, region, form["DBSubnetGroupName"], "DBSubnetGroupNotFoundFault")
        users = [
            r.physical_id
            for g, r in rds_resources(self.deployment)
            if g == region and r.type == CLUSTER and r.properties.get("DBSubnetGroupName") == group.physical_id
        ]
        if users:
            raise RdsFault(
                "InvalidDBSubnetGroupStateFault", f"DB subnet group {group.physical_id} is in use by {', '.join(users)}"
            )
        self._forget(group)
        return ""

    def _snapshots(self, region: str) -> dict[str, str]:
        aurora = self.deployment.aurora
        return {s: r for r, s in (aurora.snapshots.items() if aurora is not None else ()) if r == region}

    def _DescribeDBClusterSnapshots(self, region: str, form: dict[str, str]) -> str:
        wanted = form.get("DBClusterSnapshotIdentifier")
        found = [s for s in self._snapshots(region) if wanted in (None, s)]
        if wanted is not None and not found:
            raise RdsFault("DBClusterSnapshotNotFoundFault", f"DBClusterSnapshot {wanted} not found.")
        rows = "".join(_snapshot_xml(s) for s in found)
        return f"<DBClusterSnapshots>{rows}</DBClusterSnapshots>"

    def _DeleteDBClusterSnapshot(self, region: str, form: dict[str, str]) -> str:
        wanted = form["DBClusterSnapshotIdentifier"]
        if wanted not in self._snapshots(region):
            raise RdsFault("DBClusterSnapshotNotFoundFault", f"DBClusterSnapshot {wanted} not found.")
        aurora = self.deployment.aurora
        aurora.snapshots = {r: s for r, s in aurora.snapshots.items() if not (r == region and s == wanted)}
        return _snapshot_xml(wanted)


def _cluster_xml(cluster: DeployedResource) -> str:
    return f"<DBCluster><DBClusterIdentifier>{escape(cluster.physical_id)}</DBClusterIdentifier></DBCluster>"


def _global_xml(glob: DeployedResource) -> str:
    identifier = escape(glob.physical_id)
    return f"<GlobalCluster><GlobalClusterIdentifier>{identifier}</GlobalClusterIdentifier></GlobalCluster>"


def _snapshot_xml(identifier: str) -> str:
    return (
        f"<DBClusterSnapshot><DBClusterSnapshotIdentifier>{escape(identifier)}</DBClusterSnapshotIdentifier>"
        "<Status>available</Status><StorageEncrypted>true</StorageEncrypted></DBClusterSnapshot>"
    )


def _xml(action: str, result: str) -> Response:
    body = (
        f'<{action}Response xmlns="{_RDS}">{result}'
        f"<ResponseMetadata><RequestId>emulated</RequestId></ResponseMetadata></{action}Response>"
    )
    return "200 OK", [("Content-Type", "text/xml")], body.encode()


def _error(code: str, message: str) -> Response:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
        "</Error><RequestId>emulated</RequestId></ErrorResponse>"
    )
    return "400 Bad Request", [("Content-Type", "text/xml")], body.encode()


def stop_server(server: Any) -> None:
    """A cluster's server stopped and its storage removed (the cluster deleted)."""
    server.stop("fast")
    shutil.rmtree(server.root, ignore_errors=True)
