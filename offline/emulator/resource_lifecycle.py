"""What CloudFormation does to each emulated resource type on a stack UPDATE and on deletion.

``_update_<service>_<type>(stack, lid, previous, props, deployment)`` changes a deployed
resource in place and returns ``(physical id, attributes, what changed)``; it raises
``NeedsReplacement`` for a property CloudFormation replaces on change (the provisioner then
creates a new resource and deletes the old one honouring UpdateReplacePolicy). A property the
emulator cannot change is an ``UnsupportedTemplate`` error, never silently ignored.
``_precheck_<type>`` refuses, before anything in the stack changes, what CloudFormation
fails on; ``_check_delete_<type>`` does the same for a deletion; ``_delete_<type>`` deletes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from cloud_assembly.intrinsics import UnsupportedTemplate
from cloud_assembly.reader import StackArtifact
from offline.emulator import index_builds
from offline.emulator.deployment import DeployedResource, DeployedStack, Deployment

RETAINING = frozenset({"Retain", "RetainExceptOnCreate"})
Updated = tuple[str, dict[str, str], str]


class StackOperationFailed(RuntimeError):
    """CloudFormation would fail this stack operation (and leave the stack as it was)."""


class NeedsReplacement(Exception):
    """The change needs a new physical resource (CloudFormation's "Update requires: Replacement")."""


def changed_properties(old: Mapping[str, Any], new: Mapping[str, Any]) -> set[str]:
    return {k for k in set(old) | set(new) if old.get(k) != new.get(k)}


def _only(changed: set[str], allowed: set[str], what: str) -> None:
    unknown = changed - allowed
    if unknown:
        raise UnsupportedTemplate(f"{what}: changing {', '.join(sorted(unknown))} is not emulated")


def _added_index(old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    """The global secondary index an update adds (None: none). CloudFormation creates one per update of a
    global table and changes or deletes none here (the emulator refuses what it does not emulate)."""
    before = {i["IndexName"]: i for i in old.get("GlobalSecondaryIndexes", [])}
    after = {i["IndexName"]: i for i in new.get("GlobalSecondaryIndexes", [])}
    if any(after.get(name) != index for name, index in before.items()):
        raise UnsupportedTemplate(f"{where}: changing or deleting a global secondary index is not emulated")
    added = [index for name, index in after.items() if name not in before]
    if len(added) > 1:
        raise StackOperationFailed(
            f"{where}: CloudFormation creates one global secondary index per update of a global table; this update "
            f"adds {', '.join(sorted(i['IndexName'] for i in added))}: add one beacon field per deploy"
        )
    return added[0] if added else None


def _changes(
    previous: DeployedResource, p: dict[str, Any], where: str, *, allowed: set[str] | None, replaced_by: set[str]
) -> set[str]:
    """The properties that changed; NeedsReplacement when one CloudFormation replaces on is among
    them; UnsupportedTemplate for one the emulator cannot change (``allowed`` None: any)."""
    changed = changed_properties(previous.properties, p)
    if changed & replaced_by:
        raise NeedsReplacement("a new " + ", ".join(sorted(changed & replaced_by)))
    if allowed is not None:
        _only(changed, allowed, where)
    return changed


def protected_replica_message(table: str, region: str, doing: str) -> str:
    return (
        f"{doing} the {region} replica of {table} fails: deletion protection is on for that replica, and "
        f"DynamoDB refuses to delete a protected table. Turn it off on purpose first: aws dynamodb update-table "
        f"--region {region} --table-name {table} --no-deletion-protection-enabled"
    )


class ResourceLifecycle:
    """Mixin of the Provisioner (offline/emulator/provisioner.py): updates and deletions per type."""

    client: Callable[[str, str], Any]
    account: str
    progress: Callable[[str], None]
    _create_table_replica: Callable[[dict[str, Any], dict[str, Any], Deployment], str]
    _create_aws_lambda_function: Callable[..., tuple[str, dict[str, str]]]

    def retained(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> None:
        """A resource left in place is no longer part of the deployment (a retained global
        table keeps replicating: the service does not stop when the stack forgets it)."""
        d.keys.pop(f"{stack.name}/{resource.logical_id}", None)
        if resource.type.startswith("AWS::RDS::"):  # RDS keeps it running (and billing) after the stack is gone
            d.retained_rds.append((stack.region, resource))

    # --- KMS -------------------------------------------------------------------------------
    def _precheck_aws_kms_key(
        self, stack: StackArtifact, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> None:
        immutable = [
            k for k in ("KeySpec", "KeyUsage", "MultiRegion", "Origin") if previous.properties.get(k) != p.get(k)
        ]
        if immutable:
            raise StackOperationFailed(
                f"{stack.name}/{previous.logical_id}: CloudFormation fails an update that changes "
                f"{', '.join(immutable)} of an existing KMS key, whatever its UpdateReplacePolicy"
            )

    def _update_aws_kms_key(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        changed = changed_properties(previous.properties, p)
        allowed = {"KeyPolicy", "Description", "EnableKeyRotation", "RotationPeriodInDays", "PendingWindowInDays"}
        _only(changed, allowed | {"Enabled"}, f"{stack.name}/{lid}")
        kms, key_id = self.client("kms", stack.region), previous.physical_id
        self._update_key_common(kms, key_id, changed, p)
        if changed & {"EnableKeyRotation", "RotationPeriodInDays"}:
            if p.get("EnableKeyRotation"):
                period = (
                    {"RotationPeriodInDays": int(p["RotationPeriodInDays"])} if p.get("RotationPeriodInDays") else {}
                )
                kms.enable_key_rotation(KeyId=key_id, **period)
            else:
                kms.disable_key_rotation(KeyId=key_id)
        return key_id, previous.attributes, "changed " + ", ".join(sorted(changed))

    def _update_aws_kms_replicakey(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        allowed = {"KeyPolicy", "Description", "PendingWindowInDays", "Enabled"}
        changed = _changes(previous, p, f"{stack.name}/{lid}", allowed=allowed, replaced_by={"PrimaryKeyArn"})
        self._update_key_common(self.client("kms", stack.region), previous.physical_id, changed, p)
        return previous.physical_id, previous.attributes, "changed " + ", ".join(sorted(changed))

    @staticmethod
    def _update_key_common(kms: Any, key_id: str, changed: set[str], p: dict[str, Any]) -> None:
        if "KeyPolicy" in changed:
            kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(p["KeyPolicy"]))
        if "Description" in changed:
            kms.update_key_description(KeyId=key_id, Description=p.get("Description", ""))
        if "Enabled" in changed:
            (kms.enable_key if p.get("Enabled", True) else kms.disable_key)(KeyId=key_id)
        # PendingWindowInDays matters only when the key is deleted (read then from the properties).

    def _delete_aws_kms_key(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        """KMS never deletes a key at once: it is scheduled, with the template's pending window."""
        window = int(resource.properties.get("PendingWindowInDays", 30))
        self.client("kms", stack.region).schedule_key_deletion(KeyId=resource.physical_id, PendingWindowInDays=window)
        d.keys.pop(f"{stack.name}/{resource.logical_id}", None)
        return f"{resource.physical_id} scheduled for deletion in {window} days"

    _delete_aws_kms_replicakey = _delete_aws_kms_key

    def _update_aws_kms_alias(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        _changes(previous, p, f"{stack.name}/{lid}", allowed={"TargetKeyId"}, replaced_by={"AliasName"})
        self.client("kms", stack.region).update_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        return previous.physical_id, previous.attributes, f"now names {p['TargetKeyId']}"

    def _delete_aws_kms_alias(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self.client("kms", stack.region).delete_alias(AliasName=resource.physical_id)
        return f"{resource.physical_id} deleted"

    # --- DynamoDB --------------------------------------------------------------------------
    def _precheck_aws_dynamodb_globaltable(
        self, stack: StackArtifact, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> None:
        old = {r["Region"] for r in previous.properties["Replicas"]}
        new = {r["Region"] for r in p["Replicas"]}
        where = f"{stack.name}/{previous.logical_id}"
        if stack.region not in new:
            raise StackOperationFailed(
                f"{where}: the replica in the stack's own region {stack.region} cannot be removed"
            )
        if len(old ^ new) > 1:
            raise StackOperationFailed(
                f"{where}: CloudFormation adds or removes one replica of a global table per update; this update "
                f"adds {sorted(new - old) or 'none'} and removes {sorted(old - new) or 'none'}: "
                "deploy one region at a time"
            )
        for region in sorted(old - new):
            if self._replica_protected(previous.physical_id, region):
                raise StackOperationFailed(
                    f"{where}: " + protected_replica_message(previous.physical_id, region, "removing")
                )

    def _replica_protected(self, table: str, region: str) -> bool:
        ddb = self.client("dynamodb", region)
        try:
            return bool(ddb.describe_table(TableName=table)["Table"].get("DeletionProtectionEnabled"))
        except ddb.exceptions.ResourceNotFoundException:
            return False

    def _update_aws_dynamodb_globaltable(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        table = previous.physical_id
        top = changed_properties(
            {k: v for k, v in previous.properties.items() if k != "Replicas"},
            {k: v for k, v in p.items() if k != "Replicas"},
        )
        _only(top, {"AttributeDefinitions", "GlobalSecondaryIndexes"}, f"{stack.name}/{lid}")
        added = _added_index(previous.properties, p, f"{stack.name}/{lid}")
        old = {r["Region"]: r for r in previous.properties["Replicas"]}
        new = {r["Region"]: r for r in p["Replicas"]}
        done = []
        if added is not None:  # in every replica already there (a new replica is created with it)
            for region in [r for r in new if r in old]:
                self._create_index(table, region, p["AttributeDefinitions"], added)
            done.append(f"index {added['IndexName']} added in {', '.join(r for r in new if r in old)} (building)")
        for region in [r for r in new if r not in old]:
            self._create_table_replica(p, new[region], d)
            copied = self._backfill(table, stack.region, region)
            done.append(f"replica {region} added, {copied} items copied from {stack.region}")
        for region in [r for r in new if r in old and new[r] != old[r]]:
            done.append(self._update_table_replica(table, old[region], new[region], f"{stack.name}/{lid}"))
        for region in [r for r in old if r not in new]:
            self._delete_table_replica(table, region, d)
            done.append(f"replica {region} deleted with its items")
        return table, {**previous.attributes, "StreamArn": d.stream_arns[stack.region]}, "; ".join(done)

    def _create_index(self, table: str, region: str, attributes: list[Any], index: dict[str, Any]) -> None:
        """UpdateTable with the new index; it is CREATING (reads refused) while DynamoDB would build it."""
        spec = {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection")}
        self.client("dynamodb", region).update_table(
            TableName=table, AttributeDefinitions=attributes, GlobalSecondaryIndexUpdates=[{"Create": spec}]
        )
        index_builds.start(self.account, region, table, spec["IndexName"])

    def _backfill(self, table: str, source: str, target: str) -> int:
        """What DynamoDB does when a replica joins: copy every item of an existing replica."""
        reader, writer = self.client("dynamodb", source), self.client("dynamodb", target)
        copied = 0
        for page in reader.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page.get("Items", []):
                writer.put_item(TableName=table, Item=item)
                copied += 1
        return copied

    def _update_table_replica(self, table: str, old: dict[str, Any], new: dict[str, Any], where: str) -> str:
        changed = changed_properties(old, new)
        _only(
            changed,
            # GlobalSecondaryIndexes: a replica's settings of the table's indexes (their names here).
            {"DeletionProtectionEnabled", "PointInTimeRecoverySpecification", "GlobalSecondaryIndexes"},
            f"{where} replica {new['Region']}",
        )
        ddb = self.client("dynamodb", new["Region"])
        if "DeletionProtectionEnabled" in changed:
            ddb.update_table(TableName=table, DeletionProtectionEnabled=bool(new.get("DeletionProtectionEnabled")))
        if "PointInTimeRecoverySpecification" in changed:
            enabled = bool(new.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"))
            ddb.update_continuous_backups(
                TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled}
            )
        return f"replica {new['Region']}: changed {', '.join(sorted(changed))}"

    def _delete_table_replica(self, table: str, region: str, d: Deployment) -> None:
        ddb = self.client("dynamodb", region)
        if self._replica_protected(table, region):  # checked before; the state may have changed since
            raise StackOperationFailed(protected_replica_message(table, region, "deleting"))
        ddb.delete_table(TableName=table)
        d.tables.pop(region, None)
        d.stream_arns.pop(region, None)

    def _check_delete_aws_dynamodb_globaltable(self, stack: DeployedStack, resource: DeployedResource) -> None:
        for replica in resource.properties["Replicas"]:
            if self._replica_protected(resource.physical_id, replica["Region"]):
                raise StackOperationFailed(
                    f"{stack.name}/{resource.logical_id}: "
                    + protected_replica_message(resource.physical_id, replica["Region"], "deleting")
                )

    def _delete_aws_dynamodb_globaltable(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        regions = [r["Region"] for r in resource.properties["Replicas"]]
        ordered = [r for r in regions if r != stack.region] + [stack.region]  # the stack's own replica last
        for region in ordered:
            self._delete_table_replica(resource.physical_id, region, d)
        return f"{resource.physical_id} deleted in {', '.join(ordered)}"

    # --- IAM -------------------------------------------------------------------------------
    def _update_aws_iam_role(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        changed = changed_properties(previous.properties, p)
        allowed = {"AssumeRolePolicyDocument", "Policies", "ManagedPolicyArns", "Description"}
        _only(changed, allowed, f"{stack.name}/{lid} (a new Path or RoleName replaces the role)")
        iam, name = self.client("iam", "us-east-1"), previous.physical_id
        if "AssumeRolePolicyDocument" in changed:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]))
        if "Description" in changed:
            iam.update_role(RoleName=name, Description=p.get("Description", ""))
        if "Policies" in changed:
            new = {pol["PolicyName"]: pol["PolicyDocument"] for pol in p.get("Policies", [])}
            for old in previous.properties.get("Policies", []):
                if old["PolicyName"] not in new:
                    iam.delete_role_policy(RoleName=name, PolicyName=old["PolicyName"])
            for policy_name, doc in new.items():
                iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(doc))
        if "ManagedPolicyArns" in changed:
            old_arns, new_arns = (
                set(previous.properties.get("ManagedPolicyArns", [])),
                set(p.get("ManagedPolicyArns", [])),
            )
            for arn in sorted(old_arns - new_arns):
                iam.detach_role_policy(RoleName=name, PolicyArn=arn)
            for arn in sorted(new_arns - old_arns):
                iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        return name, previous.attributes, "changed " + ", ".join(sorted(changed))

    def _delete_aws_iam_role(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        iam, name = self.client("iam", "us-east-1"), resource.physical_id
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        iam.delete_role(RoleName=name)
        return f"role {name} deleted"

    def _update_aws_iam_managedpolicy(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        replaced_by = {"ManagedPolicyName", "Path", "Description"}
        changed = _changes(
            previous, p, f"{stack.name}/{lid}", allowed={"PolicyDocument", "Roles"}, replaced_by=replaced_by
        )
        iam, arn = self.client("iam", "us-east-1"), previous.physical_id
        if "PolicyDocument" in changed:
            iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(p["PolicyDocument"]), SetAsDefault=True)
            self._drop_old_versions(iam, arn)
        old_roles, new_roles = set(previous.properties.get("Roles", [])), set(p.get("Roles", []))
        for role in sorted(old_roles - new_roles):
            iam.detach_role_policy(RoleName=role, PolicyArn=arn)
        for role in sorted(new_roles - old_roles):
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        return arn, previous.attributes, "changed " + ", ".join(sorted(changed))

    @staticmethod
    def _drop_old_versions(iam: Any, arn: str) -> None:
        for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if not version["IsDefaultVersion"]:
                iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])

    def _delete_aws_iam_managedpolicy(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        iam, arn = self.client("iam", "us-east-1"), resource.physical_id
        for role in iam.list_entities_for_policy(PolicyArn=arn).get("PolicyRoles", []):
            iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
        self._drop_old_versions(iam, arn)
        iam.delete_policy(PolicyArn=arn)
        return f"policy {arn.rsplit('/', 1)[-1]} deleted"

    def _update_aws_iam_policy(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        _only(
            changed_properties(previous.properties, p), {"PolicyDocument", "Roles", "PolicyName"}, f"{stack.name}/{lid}"
        )
        self._delete_aws_iam_policy(stack, previous, d)  # type: ignore[arg-type]
        iam = self.client("iam", "us-east-1")
        for role in p.get("Roles", []):
            iam.put_role_policy(
                RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=json.dumps(p["PolicyDocument"])
            )
        return p["PolicyName"], {}, f"inline policy {p['PolicyName']} on {', '.join(p.get('Roles', []))}"

    def _delete_aws_iam_policy(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        iam = self.client("iam", "us-east-1")
        for role in resource.properties.get("Roles", []):
            with contextlib.suppress(iam.exceptions.NoSuchEntityException):  # the role went first
                iam.delete_role_policy(RoleName=role, PolicyName=resource.properties["PolicyName"])
        return f"inline policy {resource.physical_id} deleted"

    # --- Logs and Lambda -------------------------------------------------------------------
    def _update_aws_logs_loggroup(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        allowed = {"RetentionInDays", "KmsKeyId"}
        changed = _changes(previous, p, f"{stack.name}/{lid}", allowed=allowed, replaced_by={"LogGroupName"})
        logs, name = self.client("logs", stack.region), previous.physical_id
        if "RetentionInDays" in changed:
            if p.get("RetentionInDays"):
                logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
            else:
                logs.delete_retention_policy(logGroupName=name)
        if "KmsKeyId" in changed:
            if p.get("KmsKeyId"):
                logs.associate_kms_key(logGroupName=name, kmsKeyId=p["KmsKeyId"])
            else:
                logs.disassociate_kms_key(logGroupName=name)
        return name, previous.attributes, "changed " + ", ".join(sorted(changed))

    def _delete_aws_logs_loggroup(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self.client("logs", stack.region).delete_log_group(logGroupName=resource.physical_id)
        return f"log group {resource.physical_id} deleted"

    def _update_aws_lambda_function(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        changed = _changes(previous, p, f"{stack.name}/{lid}", allowed=None, replaced_by={"FunctionName"})
        self._forget_function(previous.physical_id, stack.region, d)
        name, attrs = self._create_aws_lambda_function(stack, lid, p, d)
        return name, attrs, "new configuration: " + ", ".join(sorted(changed))

    def _delete_aws_lambda_function(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self._forget_function(resource.physical_id, stack.region, d)
        return f"function {resource.physical_id} deleted"

    @staticmethod
    def _forget_function(name: str, region: str, d: Deployment) -> None:
        d.functions[:] = [f for f in d.functions if not (f.name == name and f.region == region)]

    # --- SSM parameters (discovery) ---------------------------------------------------------
    def _update_aws_ssm_parameter(
        self, stack: StackArtifact, lid: str, previous: DeployedResource, p: dict[str, Any], d: Deployment
    ) -> Updated:
        """A new value (or description, tier) is written in place; a new name replaces the parameter."""
        allowed = {"Value", "Description", "Tier", "AllowedPattern"}
        changed = _changes(previous, p, f"{stack.name}/{lid}", allowed=allowed, replaced_by={"Name", "Type"})
        kwargs: dict[str, Any] = {"Name": previous.physical_id, "Value": str(p["Value"]), "Type": p["Type"]}
        kwargs |= {k: p[k] for k in ("Description", "Tier", "AllowedPattern") if p.get(k)}
        self.client("ssm", stack.region).put_parameter(Overwrite=True, **kwargs)
        return (
            previous.physical_id,
            {"Type": p["Type"], "Value": str(p["Value"])},
            "changed " + ", ".join(sorted(changed)),
        )

    def _delete_aws_ssm_parameter(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self.client("ssm", stack.region).delete_parameter(Name=resource.physical_id)
        return f"parameter {resource.physical_id} deleted"

    # --- SNS and CloudWatch (created by the signals' handlers; updated by applying them again) ---
    def _delete_aws_sns_topic(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self.client("sns", stack.region).delete_topic(TopicArn=resource.physical_id)
        return f"topic {resource.physical_id} deleted"

    def _delete_aws_sns_topicpolicy(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        """The topics left get SNS's default policy back (their owner only)."""
        sns = self.client("sns", stack.region)
        for topic in resource.properties.get("Topics", []):
            with contextlib.suppress(sns.exceptions.NotFoundException):  # the topic went first
                sns.set_topic_attributes(
                    TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(default_topic_policy(topic))
                )
        return "topic policy removed"

    def _delete_aws_cloudwatch_alarm(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self.client("cloudwatch", stack.region).delete_alarms(AlarmNames=[resource.physical_id])
        return f"alarm {resource.physical_id} deleted"

    def _delete_aws_cloudwatch_dashboard(self, stack: DeployedStack, resource: DeployedResource, d: Deployment) -> str:
        self.client("cloudwatch", stack.region).delete_dashboards(DashboardNames=[resource.physical_id])
        return f"dashboard {resource.physical_id} deleted"


def default_topic_policy(topic_arn: str) -> dict[str, Any]:
    """SNS's policy of a new topic: the owning account may manage and publish."""
    account = topic_arn.split(":")[4]
    actions = [
        *("SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission", "SNS:RemovePermission"),
        *("SNS:DeleteTopic", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish"),
    ]
    return {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [
            {
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": actions,
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": account}},
            }
        ],
    }
