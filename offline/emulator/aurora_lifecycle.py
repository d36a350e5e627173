"""What CloudFormation does to the Aurora store's resources on a stack UPDATE and on deletion
(a mixin of the Provisioner, beside offline/emulator/resource_lifecycle.py, same conventions):

* a secret's ``ReplicaRegions`` changed (a region added to or taken out of the deployment):
  ReplicateSecretToRegions / RemoveRegionsFromReplication, each replica under its region's key;
* a DBCluster deleted (its Database stack deleted, or the resource gone from the template): RDS
  refuses while deletion protection is on (InvalidParameterCombination) and refuses the global
  database's current writer while other members remain (InvalidDBClusterStateFault), both before
  anything in the stack changes; otherwise the secondary is detached from the global database and
  deleted, its final snapshot recorded when the DeletionPolicy is Snapshot
  (offline/emulator/aurora.py). Retained (DeletionPolicy Retain): left running and still a member
  of the global database, as CloudFormation leaves it;
* the global cluster deleted: refused while deletion protection is on or a member remains;
* the resources recorded, not emulated (networking, instances, parameter and subnet groups):
  forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloud_assembly.intrinsics import UnsupportedTemplate
from cloud_assembly.reader import StackArtifact
from offline.emulator.aurora import ClusterRefused
from offline.emulator.deployment import DeployedResource, DeployedStack, Deployment
from offline.emulator.resource_lifecycle import NeedsReplacement, StackOperationFailed, Updated, changed_properties

SNAPSHOT = "Snapshot"
RECORDED_TYPES = (
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::FlowLog",
    "AWS::EC2::VPCEndpoint",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::VPCPeeringConnection",
    "AWS::EC2::Route",
    "AWS::RDS::DBSubnetGroup",
    "AWS::RDS::DBClusterParameterGroup",
    "AWS::RDS::DBInstance",
)


def protected_cluster_message(identifier: str, region: str) -> str:
    return (
        f"deleting Aurora cluster {identifier} in {region} fails: deletion protection is on and RDS refuses to "
        "delete a protected cluster (InvalidParameterCombination). Turn it off on purpose first, in the template "
        f"(DeletionProtection) or with: aws rds modify-db-cluster --region {region} --db-cluster-identifier "
        f"{identifier} --no-deletion-protection --apply-immediately"
    )


def final_snapshot_id(identifier: str) -> str:
    return f"{identifier}-final"


class AuroraLifecycle:
    """Mixin of the Provisioner: updates and deletions of the Aurora store's resource types."""

    client: Callable[[str, str], Any]
    account: str

    # --- Secrets Manager: the database role secrets and their replicas -------------------------
    def _update_aws_secretsmanager_secret(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        changed = changed_properties(previous.properties, p)
        if changed - {"ReplicaRegions"}:
            raise NeedsReplacement("a new " + ", ".join(sorted(changed - {"ReplicaRegions"})))

        sm, arn = self.client("secretsmanager", stack.region), previous.physical_id
        old = {r["Region"]: r for r in previous.properties.get("ReplicaRegions", [])}
        new = {r["Region"]: r for r in p.get("ReplicaRegions", [])}
        if any(old[r] != new[r] for r in set(old) & set(new)):
            raise UnsupportedTemplate(f"{stack.name}/{lid}: changing a secret replica's key is not emulated")
        added, removed = [r for r in new if r not in old], [r for r in old if r not in new]
        if added:
            sm.replicate_secret_to_regions(
                SecretId=arn,
                AddReplicaRegions=[
                    {"Region": r, **({"KmsKeyId": new[r]["KmsKeyId"]} if new[r].get("KmsKeyId") else {})} for r in added
                ],
            )
            for region in added:
                set_replica_key(
                    self.account, region, arn.replace(f":{stack.region}:", f":{region}:"), new[region].get("KmsKeyId")
                )
        if removed:
            sm.remove_regions_from_replication(SecretId=arn, RemoveReplicaRegions=removed)
        detail = "; ".join(
            [*(f"replica {r} added" for r in added), *(f"replica {r} removed (its copy deleted)" for r in removed)]
        )
        return arn, previous.attributes, detail

    def _delete_aws_secretsmanager_secret(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        sm = self.client("secretsmanager", stack.region)
        replicas = [r["Region"] for r in resource.properties.get("ReplicaRegions", [])]
        if replicas:
            sm.remove_regions_from_replication(SecretId=resource.physical_id, RemoveReplicaRegions=replicas)
        sm.delete_secret(SecretId=resource.physical_id)  # CloudFormation's: the default 30-day recovery window
        return f"{resource.physical_id} scheduled for deletion (30-day recovery window)"

    # --- RDS -----------------------------------------------------------------------------------
    def _check_delete_aws_rds_dbcluster(self, stack: DeployedStack, resource: DeployedResource) -> None:
        if str(resource.properties.get("DeletionProtection", "false")).lower() == "true":
            raise StackOperationFailed(
                f"{stack.name}/{resource.logical_id}: " + protected_cluster_message(resource.physical_id, stack.region)
            )

    def _delete_aws_rds_dbcluster(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        aurora = d.aurora
        if aurora is None:
            raise UnsupportedTemplate(f"{stack.name}/{resource.logical_id}: no emulated global database")
        snapshot = final_snapshot_id(resource.physical_id) if resource.deletion_policy == SNAPSHOT else None
        try:
            return str(aurora.remove_cluster(stack.region, resource.logical_id, snapshot))
        except ClusterRefused as refused:
            raise StackOperationFailed(f"{stack.name}/{resource.logical_id}: {refused}") from None

    def _check_delete_aws_rds_globalcluster(self, stack: DeployedStack, resource: DeployedResource) -> None:
        if str(resource.properties.get("DeletionProtection", "false")).lower() == "true":
            raise StackOperationFailed(
                f"{stack.name}/{resource.logical_id}: deleting global cluster {resource.physical_id} fails: deletion "
                "protection is on (InvalidParameterCombination); turn it off on purpose first: aws rds "
                f"modify-global-cluster --global-cluster-identifier {resource.physical_id} --no-deletion-protection"
            )

    def _delete_aws_rds_globalcluster(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        aurora = d.aurora
        if aurora is not None and aurora.clusters:
            raise StackOperationFailed(
                f"{stack.name}/{resource.logical_id}: global cluster {resource.physical_id} still has members "
                f"({', '.join(aurora.clusters)}): RDS refuses to delete it (InvalidGlobalClusterStateFault)"
            )
        if aurora is not None:
            aurora.global_clusters.pop(resource.physical_id, None)
        return f"{resource.physical_id} deleted"

    def _delete_recorded(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        ids = d.recorded.get(resource.type, [])
        key = f"{stack.name}/{resource.logical_id}"
        if key in ids:
            ids.remove(key)
        return f"{resource.physical_id} deleted (recorded, not emulated)"

    def _delete_custom_recordsschema(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        """The schema lives in the cluster: deleting the custom resource leaves it (the handler's Delete is a no-op)."""
        return f"{resource.physical_id}: the schema stays in the database (the handler deletes nothing)"


for _type in RECORDED_TYPES:
    setattr(AuroraLifecycle, "_delete_" + _type.replace("::", "_").lower(), AuroraLifecycle._delete_recorded)


def set_replica_key(account: str, region: str, arn: str, key: str | None) -> None:
    """moto keeps no key on a replica secret: set the one the template names (the gateway checks it,
    and the primary's DescribeSecret reports it in ReplicationStatus, as Secrets Manager does)."""
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[account][region].secrets.get(arn)
    if secret is not None and key:
        secret.kms_key_id = key
        secret.config["KmsKeyId"] = key
