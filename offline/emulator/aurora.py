"""EMULATION of an Aurora PostgreSQL global database with real PostgreSQL servers, from the
templates (the provisioner's ``_create_aws_rds_*`` methods call in here).

* ``AWS::RDS::GlobalCluster``: recorded (engine, version, deletion protection);
* the primary ``AWS::RDS::DBCluster`` (the one naming the global cluster by Ref, with a master
  user): a PostgreSQL 16 server of its region (offline/emulator/postgres.py), its database created and
  owned by the master user, who gets the password the template resolves from Secrets Manager
  (``{{resolve:secretsmanager:...}}``) and CREATEROLE, not superuser (as Aurora's master user has
  rds_superuser, not superuser);
* a secondary ``AWS::RDS::DBCluster`` (GlobalClusterIdentifier by name, no master user): a hot
  standby of its region, streaming from the primary;
* ``Endpoint.Address`` / ``ReadEndpoint.Address``: the region's socket directory (the readers'
  DB_HOST), ``Endpoint.Port``: 5432;
* the global cluster's ``GlobalEndpoint.Address``: a DNS name (the writers' DB_HOST) that each
  function resolves to the current writer's socket when the deployed network gives it a path there
  (offline/emulator/network.py); it follows every promotion (switchover, failover).

Storage encryption (each cluster's KmsKeyId) is checked, not emulated: the key must be a key of
the cluster's own region. What is not emulated: instances (recorded), TLS (local sockets), the
parameter group; write forwarding (``EnableGlobalWriteForwarding``) is refused as unsupported, so
no template gets a setting the emulator would silently not exercise.

Membership changes (a stack update, offline/emulator/aurora_lifecycle.py), as Aurora makes them: a
secondary added later is created from the global cluster, so it starts from a copy of the writer's
data (``pg_basebackup``) and then streams; a secondary removed is detached first (it stops
streaming) and then deleted, with its final snapshot recorded when the template asks for one. The
writer's cluster cannot leave while the global cluster has other members, as RDS refuses it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_assembly.intrinsics import UnsupportedTemplate
from offline.emulator.deployment import Deployment
from offline.emulator.functions import CUSTOM_RESOURCE_HANDLERS, PROVIDER_FRAMEWORK_HANDLER, EmulatedFunction
from offline.emulator.network import EmulatedNetwork
from offline.emulator.postgres import GlobalDatabase, PostgresError

_DYNAMIC_SECRET = re.compile(r"^\{\{resolve:secretsmanager:(?P<id>.+?):SecretString:(?P<key>[^:]+)::\}\}$")


class ClusterRefused(RuntimeError):
    """RDS refuses this change of the global database (the stack operation fails)."""


@dataclass
class ClusterSpec:
    region: str
    logical_id: str
    primary: bool
    database: str | None
    kms_key: str | None


@dataclass
class AuroraEmulation:
    """The global database of one deployment: its clusters and, once the primary exists, the servers."""

    global_clusters: dict[str, dict[str, Any]] = field(default_factory=dict)  # identifier -> properties
    clusters: dict[str, ClusterSpec] = field(default_factory=dict)  # region -> spec
    db: GlobalDatabase | None = None
    log: list[str] = field(default_factory=list)
    snapshots: dict[str, str] = field(default_factory=dict)  # region -> final snapshot of a deleted cluster
    # region -> the server of a cluster removed from the global database (RemoveFromGlobalCluster) and not
    # yet deleted: standalone and writable, as RDS leaves it (offline/emulator/rds_leftovers.py)
    standalone: dict[str, Any] = field(default_factory=dict)
    network: EmulatedNetwork = field(default_factory=EmulatedNetwork)

    @property
    def primary_region(self) -> str:
        return next(r for r, c in self.clusters.items() if c.primary)

    @property
    def secondary_regions(self) -> tuple[str, ...]:
        return tuple(r for r, c in self.clusters.items() if not c.primary)

    def add_global_cluster(self, identifier: str, props: dict[str, Any]) -> str:
        """Record the global cluster; returns its writer endpoint's name (``GlobalEndpoint.Address``)."""
        if props.get("Engine") != "aurora-postgresql":
            raise UnsupportedTemplate(f"global cluster {identifier}: engine {props.get('Engine')!r} is not emulated")
        self.global_clusters[identifier] = props
        name = f"{identifier}.global-emulated.global.rds.amazonaws.com"
        self.network.names = (*self.network.names, name)
        return name

    def refresh_network(self, d: Deployment) -> None:
        """After a deployment: every function's paths to every cluster, and the global writer
        endpoint's name pointed at the current writer wherever a function has a path to it."""
        if self.db is None:
            return
        self.network.survey(d, tuple(self.clusters))
        self._point_writer_endpoint(self.db.writer_region)

    def _point_writer_endpoint(self, writer_region: str) -> None:
        assert self.db is not None
        self.network.point(self.db.server(writer_region).socket_dir, writer_region)

    def add_cluster(self, region: str, lid: str, props: dict[str, Any], secret_value: Any) -> dict[str, str]:
        """Stand a DBCluster up; returns its attributes (endpoints)."""
        identifier = props.get("GlobalClusterIdentifier")
        if identifier not in self.global_clusters:
            raise UnsupportedTemplate(f"{lid}: GlobalClusterIdentifier {identifier!r} names no global cluster")
        key = props.get("KmsKeyId")
        if props.get("StorageEncrypted") and key and key.startswith("arn:") and key.split(":")[3] != region:
            raise UnsupportedTemplate(f"{lid}: storage key {key} is not a key of the cluster's region {region}")
        if props.get("EnableGlobalWriteForwarding"):
            raise UnsupportedTemplate(f"{lid}: EnableGlobalWriteForwarding (write forwarding) is not emulated")
        primary = "MasterUsername" in props
        if primary and any(c.primary for c in self.clusters.values()):
            raise UnsupportedTemplate(f"{lid}: a second primary cluster in global cluster {identifier}")
        if region in self.clusters:
            raise UnsupportedTemplate(f"{lid}: a second cluster of global cluster {identifier} in {region}")
        spec = ClusterSpec(
            region=region,
            logical_id=lid,
            primary=primary,
            database=props.get("DatabaseName"),
            kms_key=key,
        )
        self.clusters[region] = spec
        if primary:
            self._start_primary(spec, secret_value(props["MasterUsername"]), secret_value(props["MasterUserPassword"]))
        else:
            self._start_secondary(spec)
        socket = str(self._database().server(region).socket_dir)
        return {"Endpoint.Address": socket, "ReadEndpoint.Address": socket, "Endpoint.Port": "5432"}

    def _database(self) -> GlobalDatabase:
        if self.db is None:
            raise UnsupportedTemplate("a secondary cluster was deployed before its global database's primary")
        return self.db

    def _start_primary(self, spec: ClusterSpec, user: str, password: str) -> None:
        from psycopg import sql

        self.db = GlobalDatabase(spec.region, ())
        self.db.on_promoted.append(self._point_writer_endpoint)  # the global writer endpoint follows the writer
        self.db._start_primary()
        server = self.db.server(spec.region)
        server.query(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(sql.Identifier(user), sql.Literal(password))
        )
        if spec.database:
            server.query(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(spec.database), sql.Identifier(user))
            )
        self.log.append(
            f"EMULATED Aurora primary cluster {spec.logical_id} in {spec.region}: PostgreSQL at {server.socket_dir}"
        )

    def _start_secondary(self, spec: ClusterSpec) -> None:
        db = self._database()
        db.secondary_regions = (*db.secondary_regions, spec.region)
        db._start_standby(spec.region, db.server(db.writer_region))
        db.wait_streaming()
        self.log.append(
            f"EMULATED Aurora secondary cluster {spec.logical_id} in {spec.region}: hot standby streaming from "
            f"{db.writer_region}"
        )

    def remove_cluster(self, region: str, lid: str, final_snapshot: str | None) -> str:
        """Detach ``region``'s secondary from the global database (it stops streaming), then delete
        it (its server stopped, its storage gone; ``final_snapshot``: recorded as taken first).
        The current writer's cluster is refused while other members remain (RDS's
        InvalidDBClusterStateFault): switch over first, or remove the others."""
        db = self._database()
        if region not in self.clusters:
            raise UnsupportedTemplate(f"{lid}: no cluster of the global database in {region}")
        if region == db.writer_region and len(self.clusters) > 1:
            others = ", ".join(r for r in self.clusters if r != region)
            raise ClusterRefused(
                f"{lid}: the cluster in {region} is the global database's writer (primary) and its secondaries "
                f"({others}) are still members: RDS refuses to remove or delete it (InvalidDBClusterStateFault). "
                "Switch the primary to another region first (python -m offline promote / aws rds "
                "switchover-global-cluster), or remove the secondaries first"
            )
        server = db.servers.pop(region)
        server.stop("fast")
        shutil.rmtree(server.root, ignore_errors=True)
        db.secondary_regions = tuple(r for r in db.secondary_regions if r != region)
        del self.clusters[region]
        if final_snapshot:
            self.snapshots[region] = final_snapshot
        taken = f", final snapshot {final_snapshot}" if final_snapshot else ""
        self.log.append(f"EMULATED Aurora cluster {lid} in {region}: detached from the global database, deleted{taken}")
        return self.log[-1]

    def writer_of_global(self) -> str | None:
        """The region of the global database's writer, or None once no cluster is a member."""
        if self.db is None or not self.clusters:
            return None
        return str(self.db.writer_region)

    def detach(self, region: str) -> None:
        """RemoveFromGlobalCluster: ``region``'s cluster leaves the global database; a secondary stops
        streaming and is promoted (a standalone cluster is writable). The caller has refused the
        writer's cluster while other members remain."""
        db = self._database()
        if region not in self.clusters:
            raise ClusterRefused(f"no cluster of the global database in {region}")
        server = db.servers.pop(region)
        if not server.primary:
            server.promote()
        db.secondary_regions = tuple(r for r in db.secondary_regions if r != region)
        del self.clusters[region]
        self.standalone[region] = server
        self.log.append(f"EMULATED Aurora cluster in {region}: removed from the global database, standalone")

    def delete_standalone(self, region: str, final_snapshot: str | None) -> None:
        """DeleteDBCluster of a cluster no longer in the global database: its server stopped, its
        storage gone, its final snapshot recorded."""
        from offline.emulator.rds_leftovers import stop_server

        server = self.standalone.pop(region, None)
        if server is not None:
            stop_server(server)
        if final_snapshot:
            self.snapshots[region] = final_snapshot
        taken = f", final snapshot {final_snapshot}" if final_snapshot else ""
        self.log.append(f"EMULATED Aurora cluster in {region}: deleted{taken}")

    def stop(self) -> None:
        for server in self.standalone.values():
            server.stop("immediate")
        self.standalone.clear()
        if self.db is not None:
            self.db.stop()
            self.db = None
        self.network.stop()


def dynamic_secret(value: Any, read_secret: Any) -> str:
    """The value of a ``{{resolve:secretsmanager:ID:SecretString:KEY::}}`` reference."""
    import json

    if not isinstance(value, str):
        raise UnsupportedTemplate(f"expected a string or a Secrets Manager reference, got {value!r}")
    match = _DYNAMIC_SECRET.match(value)
    if match is None:
        return value
    try:
        return str(json.loads(read_secret(match["id"]))[match["key"]])
    except (KeyError, ValueError) as error:
        raise UnsupportedTemplate(f"cannot resolve {value}: {error}") from None


def run_custom_resource(provisioner: Any, stack: Any, lid: str, props: dict[str, Any], d: Any) -> dict[str, Any]:
    """Invoke the handler behind a custom resource's ServiceToken, as CloudFormation would: the
    real handler code (lambda_src) under its own role's credentials. The CDK provider framework's
    onEvent function is followed to the user function it calls (USER_ON_EVENT_FUNCTION_ARN)."""
    token = props.get("ServiceToken")
    spec = next((f for f in d.functions if f.arn == token), None)
    if spec is not None and spec.handler == PROVIDER_FRAMEWORK_HANDLER:
        target = spec.environment.get("USER_ON_EVENT_FUNCTION_ARN")
        spec = next((f for f in d.functions if f.arn == target), None)
    if spec is None or spec.handler not in CUSTOM_RESOURCE_HANDLERS:
        raise UnsupportedTemplate(
            f"{stack.name}/{lid}: the custom resource's ServiceToken {token!r} reaches no function with a handler "
            f"in {CUSTOM_RESOURCE_HANDLERS}"
        )
    if provisioner.credentials_for is None:
        raise UnsupportedTemplate(f"{stack.name}/{lid}: custom resources need the emulator's role credentials")
    function = EmulatedFunction(
        spec,
        role_arn=spec.role_arn,
        credentials=provisioner.credentials_for(spec.role_arn),
        account=d.account,
        endpoint_url=provisioner.endpoint_url,
        log_dir=Path(tempfile.mkdtemp(prefix="mrk-toolkit-custom-resource-")),
    )
    event = {
        "RequestType": "Create",
        "ServiceToken": token,
        "ResponseURL": "emulated://no-response-url",
        "StackId": f"arn:aws:cloudformation:{stack.region}:{d.account}:stack/{stack.name}/emulated",
        "RequestId": "emulated",
        "LogicalResourceId": lid,
        "ResourceType": "Custom::RecordsSchema",
        "ResourceProperties": props,
    }
    try:
        reply = function.invoke(event)
    finally:
        function.stop()
    if reply.get("function_error") or not isinstance(reply.get("result"), dict):
        raise UnsupportedTemplate(  # its log stays where the message says
            f"{stack.name}/{lid}: {spec.handler} failed ({reply.get('error_type')}); see {function.log_path}:\n"
            f"{function.log_text()[-1500:]}"
        )
    shutil.rmtree(function.log_path.parent, ignore_errors=True)
    provisioner.progress(f"custom resource {lid}: {spec.handler} ran under {spec.role_arn.rsplit('/', 1)[1]}")
    return reply["result"]


__all__ = ["AuroraEmulation", "ClusterRefused", "ClusterSpec", "PostgresError", "dynamic_secret", "run_custom_resource"]
