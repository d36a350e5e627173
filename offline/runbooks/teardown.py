"""Tear the toolkit down: delete its stacks in reverse dependency order (CloudFormation's
DeleteStack, as ``cdk destroy --all`` does), then list what stays behind because its
DeletionPolicy is Retain, with the AWS CLI commands that remove it on purpose, in an order
that works: the table replicas (deletion protection off, then delete; the stack's own region
last), the log groups, then the keys (single-region keys, the multi-region key's replicas, its
primary last: KMS holds a primary with replicas until they are gone). For the Aurora store: the
retained clusters detached from the global cluster (secondaries first, the primary last), their
instances deleted, each cluster's deletion protection turned off and the cluster deleted with a
final snapshot, the global cluster, the subnet groups, the role secrets (replicas first), and the
final snapshots a ``Snapshot`` DeletionPolicy left.

The same code runs against a real account and against ``python -m offline up`` (which serves
DeleteStack, ListStackResources and GetTemplate): only the endpoint differs. The commands are
``CliCommand`` values: rendered for the user, and parsed back and run by the tests.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

from offline.emulator.resource_lifecycle import RETAINING

ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client


@dataclass(frozen=True)
class CliCommand:
    """One AWS CLI command, as data: ``aws <service> <operation> --region R --param value ...``."""

    service: str
    operation: str  # the API name, e.g. UpdateTable
    region: str
    params: tuple[tuple[str, Any], ...] = ()

    def render(self) -> str:
        words = ["aws", self.service, xform_name(self.operation, "-"), "--region", self.region]
        for name, value in self.params:
            flag = xform_name(name, "-")
            if isinstance(value, bool):
                words.append(f"--{flag}" if value else f"--no-{flag}")
            elif isinstance(value, (list, tuple)):
                words += [f"--{flag}", *(shlex.quote(str(v)) for v in value)]
            else:
                words += [f"--{flag}", shlex.quote(str(value))]
        return " ".join(words)

    @classmethod
    def parse(cls, line: str) -> CliCommand:
        """The command a rendered line stands for (the service model gives names and types)."""
        import botocore.session

        words = shlex.split(line, comments=True)
        if len(words) < 3 or words[0] != "aws":
            raise ValueError(f"not an AWS CLI command: {line!r}")
        model = botocore.session.get_session().get_service_model(words[1])
        operations = {xform_name(op, "-"): op for op in model.operation_names}
        operation = operations[words[2]]
        members = model.operation_model(operation).input_shape.members
        by_flag = {xform_name(name, "-"): (name, shape.type_name) for name, shape in members.items()}
        region, params, rest = "", [], words[3:]
        while rest:
            flag = rest.pop(0).removeprefix("--")
            if flag == "region":
                region = rest.pop(0)
            elif flag.startswith("no-") and by_flag.get(flag[3:], ("", ""))[1] == "boolean":
                params.append((by_flag[flag[3:]][0], False))
            elif by_flag[flag][1] == "boolean":
                params.append((by_flag[flag][0], True))
            elif by_flag[flag][1] == "list":
                values = []
                while rest and not rest[0].startswith("--"):
                    values.append(rest.pop(0))
                params.append((by_flag[flag][0], tuple(values)))
            else:
                name, type_name = by_flag[flag]
                text = rest.pop(0)
                params.append((name, int(text) if type_name in ("integer", "long") else text))
        return cls(words[1], operation, region, tuple(params))

    def run(self, client: ClientFactory) -> Any:
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params}
        return getattr(client(self.service, self.region), xform_name(self.operation))(**params)


@dataclass
class Leftover:
    """Something that outlived its stack, and how to remove it (no command: nothing to do)."""

    what: str
    commands: list[CliCommand] = field(default_factory=list)
    rank: int = 0  # the order the commands must run in, across leftovers


@dataclass(frozen=True)
class StackResource:
    stack: str
    region: str
    logical_id: str
    type: str
    physical_id: str
    deletion_policy: str
    properties: dict[str, Any]  # as in the deployed template (unresolved)


class TeardownFailed(RuntimeError):
    pass


def deletion_waves(
    prefix: str,
    primary: str,
    replicas: Iterable[str],
    *,
    only_region: str | None = None,
    tenants: bool = False,
    aurora: bool = False,
) -> list[list[tuple[str, str]]]:
    """(stack, region) in deletion order: the reverse of the deploy graph (stacks/app_builder.py):
    every region's functions, the table, the replicas' keys, the primary's keys and the audit trail
    (stacks that are not deployed, e.g. the trail with ``audit`` off, are skipped). With ``tenants``
    the tenant keys' stacks (``<prefix>-TenantKeys-<region>``, the tenant keys' primaries; the keys
    stacks hold their replicas and depend on them) go last, in every region that has one. With
    ``only_region``: that (former replica) region's functions, then its keys. With ``aurora`` (the
    Aurora store: no table; per region a Network and a Database stack, and the peering's PeerRoutes and
    Peering stacks): the routes, then the peering connections, the secondaries' Database stacks before
    the primary's (which holds the global cluster and the secrets they replicate), the Network stacks
    after every Database stack; ``only_region``: its functions, its routes, its peering connections,
    its Database stack, then its Network and Keys stacks."""
    if only_region is not None:
        first = [[(f"{prefix}-Functions-{only_region}", only_region)]]
        if aurora:
            return [
                *first,
                [(f"{prefix}-PeerRoutes-{only_region}", only_region)],
                [(f"{prefix}-Peering-{only_region}", only_region)],
                [(f"{prefix}-Database-{only_region}", only_region)],
                [(f"{prefix}-Network-{only_region}", only_region), (f"{prefix}-Keys-{only_region}", only_region)],
            ]
        return [*first, [(f"{prefix}-Keys-{only_region}", only_region)]]
    replicas = list(replicas)
    regions = [primary, *replicas]
    # The peering (stacks/peering_stack.py): each region's routes, then the connections (requested by
    # every region but the one whose name sorts last), before the networks they join.
    peering = (
        [
            [(f"{prefix}-PeerRoutes-{r}", r) for r in regions],
            [(f"{prefix}-Peering-{r}", r) for r in regions if r != max(regions)],
        ]
        if len(regions) > 1
        else []
    )
    store = (
        [
            *peering,
            [(f"{prefix}-Database-{r}", r) for r in replicas],
            [(f"{prefix}-Database-{primary}", primary)],
            [(f"{prefix}-Network-{r}", r) for r in regions],
        ]
        if aurora
        else [[(f"{prefix}-Table", primary)]]
    )
    waves = [
        [(f"{prefix}-Functions-{r}", r) for r in [primary, *replicas]],
        *store,
        [(f"{prefix}-Keys-{r}", r) for r in replicas],
        [(f"{prefix}-Keys-{primary}", primary), (f"{prefix}-Audit", primary)],
    ]
    if tenants:
        waves[-1:] = [
            [(f"{prefix}-Keys-{primary}", primary)],
            [(f"{prefix}-Audit", primary), *((f"{prefix}-TenantKeys-{r}", r) for r in [primary, *replicas])],
        ]
    return waves


class Teardown:
    def __init__(self, client: ClientFactory, progress: Callable[[str], None]) -> None:
        self.client = client
        self.progress = progress

    def _exists(self, name: str, region: str) -> bool:
        cfn = self.client("cloudformation", region)
        try:
            cfn.describe_stacks(StackName=name)
        except cfn.exceptions.ClientError as error:
            if "does not exist" in str(error):
                return False
            raise
        return True

    def deployed(self, waves: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
        return [[s for s in wave if self._exists(*s)] for wave in waves]

    def inventory(self, waves: list[list[tuple[str, str]]]) -> list[StackResource]:
        """Every resource of the deployed stacks: physical id and DeletionPolicy (from the
        deployed template), read before anything is deleted."""
        found = []
        for name, region in (s for wave in waves for s in wave):
            cfn = self.client("cloudformation", region)
            body = cfn.get_template(StackName=name)["TemplateBody"]
            template = json.loads(body) if isinstance(body, str) else body
            resources = template.get("Resources", {})
            for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
                for summary in page["StackResourceSummaries"]:
                    declared = resources.get(summary["LogicalResourceId"], {})
                    found.append(
                        StackResource(
                            stack=name,
                            region=region,
                            logical_id=summary["LogicalResourceId"],
                            type=summary["ResourceType"],
                            physical_id=summary.get("PhysicalResourceId", ""),
                            deletion_policy=declared.get("DeletionPolicy", "Delete"),
                            properties=declared.get("Properties", {}),
                        )
                    )
        return found

    def delete(self, waves: list[list[tuple[str, str]]]) -> None:
        """Wave by wave (stacks of a wave in parallel), each waited for; stops at a failure."""
        for wave in waves:
            for name, region in wave:
                self.client("cloudformation", region).delete_stack(StackName=name)
                self.progress(f"deleting {name} ({region}) ...")
            for name, region in wave:
                cfn = self.client("cloudformation", region)
                try:
                    cfn.get_waiter("stack_delete_complete").wait(
                        StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 720}
                    )
                except Exception as error:  # botocore WaiterError: DELETE_FAILED
                    raise TeardownFailed(
                        f"{name} ({region}) was not deleted: {self._reason(cfn, name, error)}"
                    ) from None
                self.progress(f"deleted {name} ({region})")

    @staticmethod
    def _reason(cfn: Any, name: str, error: Exception) -> str:
        try:
            stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        except Exception:
            return str(error)
        return f"{stack['StackStatus']}: {stack.get('StackStatusReason', 'no reason given')}"

    # -- what stays behind ---------------------------------------------------------------------
    def leftovers(self, resources: list[StackResource]) -> list[Leftover]:
        self._resources = resources
        out: list[Leftover] = []
        for res in resources:
            finder = getattr(self, "_left_" + res.type.replace("::", "_").lower(), None)
            if finder is not None:
                out += finder(res)
            elif res.deletion_policy in RETAINING:
                out.append(Leftover(f"{res.type} {res.physical_id} ({res.stack}) retained: remove it by hand", rank=9))
        return sorted(out, key=lambda left: left.rank)

    def _left_aws_dynamodb_globaltable(self, res: StackResource) -> list[Leftover]:
        if res.deletion_policy not in RETAINING:
            return []
        regions = [r["Region"] for r in res.properties.get("Replicas", [])]
        home = res.region  # the table stack's region: its replica goes last
        out = []
        for region in [r for r in regions if r != home] + [home]:
            ddb = self.client("dynamodb", region)
            try:
                table = ddb.describe_table(TableName=res.physical_id)["Table"]
            except ddb.exceptions.ResourceNotFoundException:
                continue
            protected = bool(table.get("DeletionProtectionEnabled"))
            name = ("TableName", res.physical_id)
            unprotect = CliCommand("dynamodb", "UpdateTable", region, (name, ("DeletionProtectionEnabled", False)))
            commands = [unprotect] if protected else []
            commands.append(CliCommand("dynamodb", "DeleteTable", region, (name,)))
            what = (
                f"table {res.physical_id} in {region} ({'replica' if region != home else 'its last replica'}; "
                f"deletion protection {'on' if protected else 'off'}): deleting it deletes its items"
            )
            out.append(Leftover(what, commands, rank=0))
        return out

    def _left_aws_logs_loggroup(self, res: StackResource) -> list[Leftover]:
        if res.deletion_policy not in RETAINING:
            return []
        groups = self.client("logs", res.region).describe_log_groups(logGroupNamePrefix=res.physical_id)["logGroups"]
        if not any(g["logGroupName"] == res.physical_id for g in groups):
            return []
        command = CliCommand("logs", "DeleteLogGroup", res.region, (("logGroupName", res.physical_id),))
        return [Leftover(f"log group {res.physical_id} in {res.region}", [command], rank=1)]

    def _left_aws_kms_key(self, res: StackResource) -> list[Leftover]:
        kms = self.client("kms", res.region)
        try:
            meta = kms.describe_key(KeyId=res.physical_id)["KeyMetadata"]
        except kms.exceptions.NotFoundException:
            return []
        # What the template made it (not what DescribeKey says: a primary can be promoted elsewhere).
        if res.type == "AWS::KMS::ReplicaKey":
            label, rank = "multi-region key, replica", 3
        elif str(res.properties.get("MultiRegion", "")).lower() == "true":
            label, rank = "multi-region key, primary", 4
        else:
            label, rank = "single-region key", 2
        what = f"key {res.physical_id} in {res.region} ({label}, {res.stack})"
        if meta["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion"):
            when = meta.get("DeletionDate")
            return [Leftover(f"{what}: already pending deletion{f' until {when:%Y-%m-%d}' if when else ''}", rank=rank)]
        if res.deletion_policy not in RETAINING:
            return []
        window = int(res.properties.get("PendingWindowInDays", 30))
        command = CliCommand(
            "kms", "ScheduleKeyDeletion", res.region, (("KeyId", res.physical_id), ("PendingWindowInDays", window))
        )
        return [Leftover(f"{what}: {meta['KeyState']}", [command], rank=rank)]

    _left_aws_kms_replicakey = _left_aws_kms_key

    def _left_aws_s3_bucket(self, res: StackResource) -> list[Leftover]:
        """The audit trail's bucket: evidence, kept on purpose; no command is printed for it."""
        if res.deletion_policy not in RETAINING:
            return []
        what = (
            f"bucket {res.physical_id} in {res.region} (the audit trail's log files, versioned, {res.stack}): keep "
            "it as long as your retention rules require; its files are encrypted with the trail key listed below, "
            "so copy what you must keep before that key's deletion window ends. To delete it, delete every object "
            "version first (aws s3api list-object-versions, delete-objects), then the bucket"
        )
        return [Leftover(what, rank=1)]

    # -- the Aurora store (no RDS call: a retained cluster is no longer a stack's, and what the
    # -- template made it is what the commands need) ---------------------------------------------
    def _same_stack_ref(self, res: StackResource, value: Any) -> str:
        """A property's value, a Ref to a resource of the same stack read as that resource's physical id."""
        if isinstance(value, dict) and "Ref" in value:
            found = [r for r in self._resources if r.stack == res.stack and r.logical_id == value["Ref"]]
            return found[0].physical_id if found else str(value["Ref"])
        return str(value)

    def _account(self, region: str) -> str:
        return str(self.client("sts", region).get_caller_identity()["Account"])

    def _left_aws_rds_dbcluster(self, res: StackResource) -> list[Leftover]:
        cluster = ("DBClusterIdentifier", res.physical_id)
        if res.deletion_policy not in RETAINING:
            if res.deletion_policy != "Snapshot":
                return []
            snapshot = f"{res.physical_id}-final"
            delete = CliCommand(
                "rds", "DeleteDBClusterSnapshot", res.region, (("DBClusterSnapshotIdentifier", snapshot),)
            )
            what = (
                f"final snapshot {snapshot} of cluster {res.physical_id} in {res.region} (DeletionPolicy Snapshot; "
                "billed as backup storage per GB-month until deleted; encrypted with the region's records key)"
            )
            return [Leftover(what, [delete], rank=1)]
        global_id = self._same_stack_ref(res, res.properties.get("GlobalClusterIdentifier", ""))
        secondary = "MasterUsername" not in res.properties
        arn = f"arn:aws:rds:{res.region}:{self._account(res.region)}:cluster:{res.physical_id}"
        detach = CliCommand(
            "rds",
            "RemoveFromGlobalCluster",
            res.region,
            (("GlobalClusterIdentifier", global_id), ("DbClusterIdentifier", arn)),
        )
        role = "secondary" if secondary else "primary (remove the secondaries first)"
        member = Leftover(
            f"cluster {res.physical_id} in {res.region} ({role}, {res.stack}): still a member of global cluster "
            f"{global_id}, running and billed (instances, storage, replicated writes); detach it",
            [detach],
            rank=-6 if secondary else -5,
        )
        unprotect = CliCommand(
            "rds", "ModifyDBCluster", res.region, (cluster, ("DeletionProtection", False), ("ApplyImmediately", True))
        )
        delete = CliCommand(
            "rds", "DeleteDBCluster", res.region, (cluster, ("FinalDBSnapshotIdentifier", f"{res.physical_id}-final"))
        )
        gone = Leftover(
            f"cluster {res.physical_id} in {res.region} (deletion protection on): deleting it deletes its rows; the "
            f"final snapshot {res.physical_id}-final stays (delete-db-cluster-snapshot when no longer needed)",
            [unprotect, delete],
            rank=-3,
        )
        return [member, gone]

    def _left_aws_rds_dbinstance(self, res: StackResource) -> list[Leftover]:
        if res.deletion_policy not in RETAINING:
            return []
        cluster = self._same_stack_ref(res, res.properties.get("DBClusterIdentifier", ""))
        command = CliCommand("rds", "DeleteDBInstance", res.region, (("DBInstanceIdentifier", res.physical_id),))
        return [
            Leftover(
                f"instance {res.physical_id} of cluster {cluster} in {res.region} (billed per hour)", [command], rank=-4
            )
        ]

    def _left_aws_rds_globalcluster(self, res: StackResource) -> list[Leftover]:
        if res.deletion_policy not in RETAINING:
            return []
        glob = ("GlobalClusterIdentifier", res.physical_id)
        commands = [
            CliCommand("rds", "ModifyGlobalCluster", res.region, (glob, ("DeletionProtection", False))),
            CliCommand("rds", "DeleteGlobalCluster", res.region, (glob,)),
        ]
        return [
            Leftover(
                f"global cluster {res.physical_id} (deletion protection on; once it has no member)", commands, rank=-2
            )
        ]

    def _left_aws_rds_dbsubnetgroup(self, res: StackResource) -> list[Leftover]:
        if res.deletion_policy not in RETAINING:
            return []
        command = CliCommand("rds", "DeleteDBSubnetGroup", res.region, (("DBSubnetGroupName", res.physical_id),))
        return [
            Leftover(
                f"subnet group {res.physical_id} in {res.region} (no cost; once its cluster is gone)",
                [command],
                rank=-1,
            )
        ]

    def _left_aws_secretsmanager_secret(self, res: StackResource) -> list[Leftover]:
        if res.deletion_policy not in RETAINING:
            return []
        secret = ("SecretId", res.physical_id)
        replicas = tuple(str(r.get("Region")) for r in res.properties.get("ReplicaRegions", []))
        commands = (
            [
                CliCommand(
                    "secretsmanager",
                    "RemoveRegionsFromReplication",
                    res.region,
                    (secret, ("RemoveReplicaRegions", replicas)),
                )
            ]
            if replicas
            else []
        )
        commands.append(CliCommand("secretsmanager", "DeleteSecret", res.region, (secret, ("RecoveryWindowInDays", 7))))
        where = f", replicas in {', '.join(replicas)}" if replicas else ""
        what = (
            f"secret {res.physical_id} in {res.region}{where} (a database role's password; billed per secret and "
            "replica per month)"
        )
        return [Leftover(what, commands, rank=1)]


def render_leftovers(leftovers: list[Leftover]) -> list[str]:
    if not leftovers:
        return ["Nothing stays behind."]
    lines = [
        "What stays behind (DeletionPolicy Retain), and the commands that remove it on purpose, in this order.",
        "Scheduling the multi-region key's deletion makes every record encrypted under it, and every backup",
        "or export of them, undecryptable once the pending window has passed (cancel-key-deletion until then).",
    ]
    for left in leftovers:
        lines.append(f"# {left.what}")
        lines += [command.render() for command in left.commands]
    return lines
