"""Stand up a synthesized cloud assembly on the emulated AWS (moto), and change it later.

Creates, in each stack's region and in wave order, the resources the templates describe:
KMS keys (the MRK primary, its replicas via ReplicateKey so they share id and material, the
SSE and logs keys) with their key policies, aliases, the global table's regional replicas
(moto has no global tables), IAM roles and customer-managed policies, log groups, and the
functions' definitions (handler, role, resolved environment). Values are resolved from the
templates themselves, weak cross-region references (Fn::GetStackOutput) included.

A later assembly is applied as CloudFormation applies a stack UPDATE (``Provisioner.apply``,
what ``cdk deploy --all`` does): per stack, resources new in the template are created, those
whose resolved properties changed are updated in place (``_update_<service>_<type>``) or
replaced, and those gone are deleted after, honouring DeletionPolicy / UpdateReplacePolicy
(Retain: left in moto and reported). A stack is deleted (``delete_stack``) in reverse
dependency order of its resources, honouring DeletionPolicy. A change CloudFormation refuses
(e.g. removing a deletion-protected table replica) fails the stack before anything in it
changes, as CloudFormation's rollback would leave it. The update and delete handlers are in
offline/emulator/resource_lifecycle.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError

from cloud_assembly.intrinsics import Resolver, UnsupportedTemplate, references
from cloud_assembly.reader import CloudAssembly, StackArtifact
from offline.emulator.audit_resources import AuditResources
from offline.emulator.aurora import AuroraEmulation, dynamic_secret, run_custom_resource
from offline.emulator.aurora_lifecycle import AuroraLifecycle, set_replica_key
from offline.emulator.deployment import Change, DeployedResource, DeployedStack, Deployment, FunctionSpec
from offline.emulator.resource_lifecycle import (
    RETAINING,
    NeedsReplacement,
    ResourceLifecycle,
    StackOperationFailed,
)
from offline.emulator.rotation_resources import SecretRotationResources

IGNORED_TYPES = {"AWS::CDK::Metadata"}
__all__ = ["Provisioner"]


def _suffix(type_name: str) -> str:
    """AWS::KMS::Key -> aws_kms_key: the handler name suffix of a resource type."""
    return type_name.replace("::", "_").lower()


def _resolve_known(resolver: Resolver, props: dict[str, Any]) -> dict[str, Any] | None:
    """The properties as far as they resolve before anything in the stack changes (None when
    they name a resource created by this very update)."""
    try:
        return resolver.resolve(props)  # type: ignore[no-any-return]
    except UnsupportedTemplate:
        return None


def _resource_order(template: dict[str, Any]) -> list[str]:
    resources = template.get("Resources", {})
    deps = {}
    for lid, res in resources.items():
        refs = references(res.get("Properties", {})) & set(resources)
        depends = res.get("DependsOn", [])
        refs |= set(depends if isinstance(depends, list) else [depends])
        deps[lid] = refs
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(resources):
        ready = sorted(lid for lid in resources if lid not in done and deps[lid] <= done)
        if not ready:
            raise UnsupportedTemplate(f"cycle among resources {sorted(set(resources) - done)}")
        order += ready
        done |= set(ready)
    return order


def _reverse_resource_order(template: dict[str, Any]) -> list[str]:
    return list(reversed(_resource_order(template)))


class Provisioner(AuditResources, ResourceLifecycle, SecretRotationResources, AuroraLifecycle):
    def __init__(
        self, session: boto3.Session, account: str, endpoint_url: str, progress: Callable[[str], None]
    ) -> None:
        self.session = session
        self.account = account
        self.endpoint_url = endpoint_url
        self.progress = progress
        # Role credentials for functions the deployment itself runs (custom resources); set by
        # the emulator (EmulatedAws.credentials_for).
        self.credentials_for: Callable[[str], dict[str, str]] | None = None
        self.deployments: list[Deployment] = []  # what deploy() started, even if it failed half way

    def client(self, service: str, region: str) -> Any:
        return self.session.client(service, region_name=region, endpoint_url=self.endpoint_url)

    def deploy(self, assembly: CloudAssembly) -> Deployment:
        deployment = Deployment(account=self.account, assembly=assembly)
        self.deployments.append(deployment)
        self.apply(deployment, assembly)
        return deployment

    def apply(self, deployment: Deployment, assembly: CloudAssembly) -> list[Change]:
        """Deploy ``assembly`` over what is deployed, as ``cdk deploy --all`` does: stacks in wave
        order, each created or updated. Stacks no longer in the assembly stay deployed (cdk deploy
        deletes no stack; ``delete_stack`` does). Stops at the first stack that fails."""
        foreign = sorted({s.account for s in assembly.stacks.values() if s.account} - {self.account})
        if foreign:
            raise UnsupportedTemplate(
                f"the assembly is for account {', '.join(foreign)}; this emulator serves {self.account}: synthesize "
                "with the account it was stood up with"
            )
        changes: list[Change] = []
        for number, wave in enumerate(assembly.waves(), start=1):
            for stack in wave:
                verb = "updated" if stack.name in deployment.stacks else "deployed"
                done = self._deploy_stack(stack, deployment)
                changes += done
                summary = f"; {len(done)} changes" if verb == "updated" else ""
                self.progress(
                    f"wave {number}: {verb} {stack.name} ({stack.region}, {len(stack.resources())} resources{summary})"
                )
        deployment.assembly = assembly
        if deployment.aurora is not None:  # routes, rules, peering or functions may have changed
            deployment.aurora.refresh_network(deployment)
        return changes

    def _resolver(
        self,
        stack: StackArtifact,
        deployment: Deployment,
        physical: dict[str, str],
        attrs: dict[str, dict[str, str]],
    ) -> Resolver:
        def stack_output(stack_name: str, region: str, output: str) -> str:
            target = deployment.stacks.get(stack_name)
            if target is None or target.region != region:
                raise UnsupportedTemplate(
                    f"{stack.name}: Fn::GetStackOutput names {stack_name} in {region}, which is not deployed"
                )
            try:
                return deployment.outputs[stack_name][output]
            except KeyError:
                raise UnsupportedTemplate(
                    f"{stack.name}: output {output} of {stack_name} is not deployed yet (stack order wrong?)"
                ) from None

        return Resolver(
            stack_name=stack.name,
            region=stack.region,
            account=self.account,
            physical_ids=physical,
            attributes=attrs,
            stack_output=stack_output,
            parameters={name: p.get("Default") for name, p in stack.template.get("Parameters", {}).items()},
        )

    def _deploy_stack(self, stack: StackArtifact, deployment: Deployment) -> list[Change]:
        """Create the stack, or update it to ``stack``'s template (CloudFormation's order: create
        and update in dependency order, then delete what the template no longer has)."""
        old = deployment.stacks.get(stack.name)
        deployed = DeployedStack(artifact=stack, resources=dict(old.resources) if old else {})
        physical = {lid: r.physical_id for lid, r in deployed.resources.items()}
        attrs = {lid: r.attributes for lid, r in deployed.resources.items()}
        resolver = self._resolver(stack, deployment, physical, attrs)
        resources = stack.template.get("Resources", {})
        order = [lid for lid in _resource_order(stack.template) if resources[lid]["Type"] not in IGNORED_TYPES]
        if old is not None:
            self._precheck_update(stack, order, old, resolver, deployment)
        deployment.stacks[stack.name] = deployed
        changes: list[Change] = []
        replaced: list[DeployedResource] = []
        for lid in order:
            res = stack.template["Resources"][lid]
            props = resolver.resolve(res.get("Properties", {}))
            previous = old.resources.get(lid) if old else None
            if previous is not None and previous.type == res["Type"] and previous.properties == props:
                continue
            try:
                change, done = self._create_or_update(stack, lid, res, props, previous, deployment)
            except ClientError as error:  # AWS refused it: the stack fails here (no rollback emulated)
                deployed.status = "UPDATE_FAILED" if old is not None else "CREATE_FAILED"
                deployed.reason = f"{stack.name}/{lid} ({res['Type']}): {error}"
                raise StackOperationFailed(deployed.reason) from None
            if change.action == "replace" and previous is not None:
                replaced.append(previous)
            deployed.resources[lid] = done
            physical[lid], attrs[lid] = done.physical_id, done.attributes
            changes.append(change)
        if old is not None:
            for lid in _reverse_resource_order(old.artifact.template):
                if lid in old.resources and lid not in stack.template["Resources"]:
                    changes.append(self._remove(old, old.resources[lid], deployment, replaced=False))
                    deployed.resources.pop(lid, None)
            changes += [self._remove(old, r, deployment, replaced=True) for r in replaced]
        deployment.outputs[stack.name] = {
            name: resolver.resolve(out["Value"]) for name, out in stack.template.get("Outputs", {}).items()
        }
        deployed.status = "UPDATE_COMPLETE" if old is not None else "CREATE_COMPLETE"
        return changes

    def _precheck_update(
        self,
        stack: StackArtifact,
        order: list[str],
        old: DeployedStack,
        resolver: Resolver,
        deployment: Deployment,
    ) -> None:
        """Refuse, before anything in the stack changes, what CloudFormation would fail on (its
        rollback leaves the stack as it was)."""
        try:
            for lid in order:
                previous = old.resources.get(lid)
                res = stack.template["Resources"][lid]
                check = getattr(self, "_precheck_" + _suffix(res["Type"]), None)
                if previous is None or check is None or previous.type != res["Type"]:
                    continue
                props = _resolve_known(resolver, res.get("Properties", {}))
                if props is not None and props != previous.properties:
                    check(stack, previous, props, deployment)
            for lid, previous in old.resources.items():
                if lid not in stack.template["Resources"]:
                    self._check_deletable(old, previous)
        except StackOperationFailed as failure:
            old.status, old.reason = "UPDATE_ROLLBACK_COMPLETE", str(failure)
            raise

    def _create_or_update(
        self,
        stack: StackArtifact,
        lid: str,
        res: dict[str, Any],
        props: dict[str, Any],
        previous: DeployedResource | None,
        deployment: Deployment,
    ) -> tuple[Change, DeployedResource]:
        type_name = res["Type"]
        if previous is not None and previous.type == type_name:
            update = getattr(self, "_update_" + _suffix(type_name), None)
            try:
                if update is None:
                    raise NeedsReplacement(f"no in-place update of {type_name} is emulated")
                pid, attrs, detail = update(stack, lid, previous, props, deployment)
                return Change(stack.name, lid, type_name, "update", detail), self._record(res, lid, pid, attrs, props)
            except NeedsReplacement as why:
                replacing = f"replaced ({why})"
        else:
            replacing = "" if previous is None else f"replaced (type {previous.type} -> {type_name})"
        create = getattr(self, "_create_" + _suffix(type_name), None)
        if create is None:
            raise UnsupportedTemplate(f"{stack.name}/{lid}: resource type {type_name} is not emulated")
        pid, attrs = create(stack, lid, props, deployment)
        action = "replace" if replacing else "create"
        if previous is not None and previous.type == type_name and pid == previous.physical_id:
            # An upserting API (PutMetricAlarm, PutDashboard, CreateTopic) changed the same
            # resource in place: there is no old one to delete.
            action, replacing = "update", "applied again to the same resource"
        return Change(stack.name, lid, type_name, action, replacing), self._record(res, lid, pid, attrs, props)

    @staticmethod
    def _record(
        res: dict[str, Any], lid: str, pid: str, attrs: dict[str, str], props: dict[str, Any]
    ) -> DeployedResource:
        return DeployedResource(
            logical_id=lid,
            type=res["Type"],
            physical_id=pid,
            attributes=attrs,
            properties=props,
            deletion_policy=res.get("DeletionPolicy", "Delete"),
            update_replace_policy=res.get("UpdateReplacePolicy", "Delete"),
        )

    def _check_deletable(self, stack: DeployedStack, resource: DeployedResource) -> None:
        check = getattr(self, "_check_delete_" + _suffix(resource.type), None)
        if check is not None and resource.deletion_policy not in RETAINING:
            check(stack, resource)

    def _remove(
        self, stack: DeployedStack, resource: DeployedResource, deployment: Deployment, *, replaced: bool
    ) -> Change:
        """Delete one resource, or leave it in place when its policy says Retain."""
        policy = resource.update_replace_policy if replaced else resource.deletion_policy
        what = "UpdateReplacePolicy" if replaced else "DeletionPolicy"
        if policy in RETAINING:
            self.retained(stack, resource, deployment)
            return Change(
                stack.name,
                resource.logical_id,
                resource.type,
                "retain",
                f"{resource.physical_id} left in place ({what} {policy})",
            )
        delete = getattr(self, "_delete_" + _suffix(resource.type), None)
        if delete is None:
            raise UnsupportedTemplate(f"{stack.name}/{resource.logical_id}: deleting {resource.type} is not emulated")
        detail = delete(stack, resource, deployment)
        return Change(stack.name, resource.logical_id, resource.type, "delete", detail)

    def delete_stack(self, name: str, deployment: Deployment) -> list[Change]:
        """Delete a deployed stack as CloudFormation does: its resources in reverse dependency
        order, each honouring its DeletionPolicy. A resource that cannot be deleted (a
        deletion-protected table) fails the stack (DELETE_FAILED) before anything is deleted."""
        stack = deployment.stacks[name]
        try:
            for resource in stack.resources.values():
                self._check_deletable(stack, resource)
        except StackOperationFailed as failure:
            stack.status, stack.reason = "DELETE_FAILED", str(failure)
            raise
        changes = []
        for lid in _reverse_resource_order(stack.artifact.template):
            if lid not in stack.resources:
                continue
            try:
                changes.append(self._remove(stack, stack.resources[lid], deployment, replaced=False))
            except ClientError as error:  # AWS refused it: DELETE_FAILED, what is deleted stays deleted
                stack.status, stack.reason = "DELETE_FAILED", f"{name}/{lid} ({stack.resources[lid].type}): {error}"
                raise StackOperationFailed(stack.reason) from None
            del stack.resources[lid]
        del deployment.stacks[name]
        deployment.outputs.pop(name, None)
        self.progress(f"deleted {name} ({stack.region}): " + ", ".join(f"{c.logical_id} {c.action}" for c in changes))
        return changes

    # --- KMS -------------------------------------------------------------------------------
    def _create_aws_kms_key(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        kms = self.client("kms", stack.region)
        meta = kms.create_key(
            Policy=json.dumps(p["KeyPolicy"]),
            Description=p.get("Description", ""),
            KeyUsage=p.get("KeyUsage", "ENCRYPT_DECRYPT"),
            KeySpec=p.get("KeySpec", "SYMMETRIC_DEFAULT"),
            MultiRegion=bool(p.get("MultiRegion", False)),
            **_kms_tags(p),
        )["KeyMetadata"]
        if p.get("EnableKeyRotation"):
            period = {"RotationPeriodInDays": int(p["RotationPeriodInDays"])} if p.get("RotationPeriodInDays") else {}
            kms.enable_key_rotation(KeyId=meta["KeyId"], **period)
        d.keys[f"{stack.name}/{lid}"] = {"Arn": meta["Arn"], "KeyId": meta["KeyId"], "Region": stack.region}
        return meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    def _create_aws_kms_replicakey(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        primary_arn = p["PrimaryKeyArn"]
        match = re.fullmatch(r"arn:aws:kms:([a-z0-9-]+):(\d{12}):key/(mrk-[0-9a-f-]+)", primary_arn)
        if not match:
            raise UnsupportedTemplate(
                f"{stack.name}/{lid}: PrimaryKeyArn {primary_arn!r} is not a multi-region key ARN"
            )
        primary_region, _, key_id = match.groups()
        if primary_region == stack.region:
            raise UnsupportedTemplate(f"{stack.name}/{lid}: a replica must be in another region than its primary")
        # moto needs the bare key id here (an ARN gives a 500).
        replica = self.client("kms", primary_region).replicate_key(
            KeyId=key_id,
            ReplicaRegion=stack.region,
            Policy=json.dumps(p["KeyPolicy"]),
            Description=p.get("Description", ""),
            **_kms_tags(p),
        )["ReplicaKeyMetadata"]
        # moto copies the primary's key policy onto the replica: set the replica's own, as KMS does.
        self.client("kms", stack.region).put_key_policy(
            KeyId=replica["KeyId"], PolicyName="default", Policy=json.dumps(p["KeyPolicy"])
        )
        if tags := _kms_tags(p):
            # moto's ReplicateKey drops Tags; KMS tags the replica with them (tags are per key, not shared).
            self.client("kms", stack.region).tag_resource(KeyId=replica["KeyId"], **tags)
        d.keys[f"{stack.name}/{lid}"] = {"Arn": replica["Arn"], "KeyId": replica["KeyId"], "Region": stack.region}
        return replica["KeyId"], {"Arn": replica["Arn"], "KeyId": replica["KeyId"]}

    def _create_aws_kms_alias(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        kms = self.client("kms", stack.region)
        try:
            kms.create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        except kms.exceptions.AlreadyExistsException:
            # moto copies a primary's aliases onto its replicas; KMS does not. Accept only the
            # same name on the same key id.
            aliases = kms.list_aliases(KeyId=p["TargetKeyId"])["Aliases"]
            if not any(a["AliasName"] == p["AliasName"] for a in aliases):
                raise
        return p["AliasName"], {}

    # --- DynamoDB --------------------------------------------------------------------------
    def _create_aws_dynamodb_globaltable(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        arns = {replica["Region"]: self._create_table_replica(p, replica, d) for replica in p["Replicas"]}
        return p["TableName"], {"Arn": arns[stack.region], "StreamArn": d.stream_arns[stack.region]}

    def _create_table_replica(self, p: dict[str, Any], replica: dict[str, Any], d: Deployment) -> str:
        """One regional table of the global table (what CreateTableReplica makes); its ARN."""
        name, region = p["TableName"], replica["Region"]
        ddb = self.client("dynamodb", region)
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
            # Global tables replicate through streams of new and old images.
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "DeletionProtectionEnabled": bool(replica.get("DeletionProtectionEnabled", False)),
        }
        if p.get("GlobalSecondaryIndexes"):  # a global table's indexes exist in every replica
            kwargs["GlobalSecondaryIndexes"] = [
                {k: v for k, v in gsi.items() if k in ("IndexName", "KeySchema", "Projection")}
                for gsi in p["GlobalSecondaryIndexes"]
            ]
        if p.get("SSESpecification", {}).get("SSEEnabled"):
            key = replica.get("SSESpecification", {}).get("KMSMasterKeyId")
            kwargs["SSESpecification"] = {"Enabled": True, "SSEType": "KMS", **({"KMSMasterKeyId": key} if key else {})}
        table = ddb.create_table(**kwargs)["TableDescription"]
        if replica.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        d.tables[region] = name
        d.stream_arns[region] = table["LatestStreamArn"]
        return str(table["TableArn"])

    # --- IAM -------------------------------------------------------------------------------
    def _create_aws_iam_role(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        iam = self.client("iam", "us-east-1")
        name = f"{stack.name}-{lid}"[:64]
        role = iam.create_role(
            RoleName=name,
            Path=p.get("Path", "/"),
            AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
            Description=p.get("Description", ""),
        )["Role"]
        for inline in p.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=inline["PolicyName"], PolicyDocument=json.dumps(inline["PolicyDocument"])
            )
        for arn in p.get("ManagedPolicyArns", []):
            try:
                iam.attach_role_policy(RoleName=name, PolicyArn=arn)
            except iam.exceptions.NoSuchEntityException:
                if not arn.startswith("arn:aws:iam::aws:policy/"):
                    raise
                # moto does not load AWS managed policies (e.g. RDS enhanced monitoring's): the
                # role then holds none of its permissions here, which fails closed.
                d.log.append(f"{name}: AWS managed policy {arn} not attached (not in moto)")
        return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}

    def _create_aws_iam_managedpolicy(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        iam = self.client("iam", "us-east-1")
        policy = iam.create_policy(
            PolicyName=p.get("ManagedPolicyName", f"{stack.name}-{lid}"[:128]),
            Path=p.get("Path", "/"),
            PolicyDocument=json.dumps(p["PolicyDocument"]),
            Description=p.get("Description", ""),
        )["Policy"]
        for role in p.get("Roles", []):
            iam.attach_role_policy(RoleName=role, PolicyArn=policy["Arn"])
        return policy["Arn"], {"PolicyArn": policy["Arn"]}

    def _create_aws_iam_policy(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        iam = self.client("iam", "us-east-1")
        for role in p.get("Roles", []):
            iam.put_role_policy(
                RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=json.dumps(p["PolicyDocument"])
            )
        return p["PolicyName"], {}

    # --- Logs and Lambda -------------------------------------------------------------------
    def _create_aws_logs_loggroup(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        logs = self.client("logs", stack.region)
        name = p.get("LogGroupName", f"{stack.name}-{lid}")
        kwargs: dict[str, Any] = {"logGroupName": name}
        if p.get("KmsKeyId"):
            kwargs["kmsKeyId"] = p["KmsKeyId"]
        logs.create_log_group(**kwargs)
        if p.get("RetentionInDays"):
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
        arn = f"arn:aws:logs:{stack.region}:{self.account}:log-group:{name}:*"
        return name, {"Arn": arn}

    def _create_aws_lambda_function(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        name = p.get("FunctionName", f"{stack.name}-{lid}"[:64])
        arn = f"arn:aws:lambda:{stack.region}:{self.account}:function:{name}"
        env = {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}
        d.functions.append(
            FunctionSpec(
                stack=stack.name,
                logical_id=lid,
                region=stack.region,
                name=name,
                arn=arn,
                handler=p["Handler"],
                runtime=p["Runtime"],
                role_arn=p["Role"],
                environment=env,
                log_group=p.get("LoggingConfig", {}).get("LogGroup"),
                timeout=int(p.get("Timeout", 3)),
                memory=int(p.get("MemorySize", 128)),
            )
        )
        return name, {"Arn": arn}

    # --- Signals: SNS and CloudWatch ---------------------------------------------------------
    def _create_aws_sns_topic(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        attributes = {k: str(p[k]) for k in ("KmsMasterKeyId", "DisplayName") if p.get(k)}
        name = p.get("TopicName", f"{stack.name}-{lid}"[:256])
        arn = self.client("sns", stack.region).create_topic(Name=name, Attributes=attributes)["TopicArn"]
        return arn, {"TopicArn": arn, "TopicName": name}

    def _create_aws_sns_topicpolicy(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        sns = self.client("sns", stack.region)
        for topic in p["Topics"]:
            sns.set_topic_attributes(
                TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
            )
        return f"{stack.name}-{lid}", {}

    def _create_aws_ssm_parameter(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        """A String parameter (CloudFormation's physical id is its name). A name already taken fails, as
        CloudFormation's create does (no Overwrite)."""
        name = p.get("Name", f"CFN-{stack.name}-{lid}")
        kwargs: dict[str, Any] = {"Name": name, "Value": str(p["Value"]), "Type": p["Type"]}
        kwargs |= {k: p[k] for k in ("Description", "Tier", "AllowedPattern", "DataType") if p.get(k)}
        self.client("ssm", stack.region).put_parameter(**kwargs)
        return name, {"Type": p["Type"], "Value": str(p["Value"])}

    _ALARM_FIELDS = (
        *("AlarmName", "AlarmDescription", "Namespace", "MetricName", "Statistic", "ExtendedStatistic"),
        *("Period", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator"),
        *("TreatMissingData", "AlarmActions", "OKActions", "InsufficientDataActions", "ActionsEnabled", "Unit"),
        *("Dimensions", "Metrics"),
    )

    def _create_aws_cloudwatch_alarm(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        kwargs = {k: p[k] for k in self._ALARM_FIELDS if k in p}
        kwargs.setdefault("AlarmName", f"{stack.name}-{lid}"[:255])
        for number in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if number in kwargs:
                kwargs[number] = int(kwargs[number])
        kwargs["Threshold"] = float(kwargs["Threshold"])
        self.client("cloudwatch", stack.region).put_metric_alarm(**kwargs)
        arn = f"arn:aws:cloudwatch:{stack.region}:{self.account}:alarm:{kwargs['AlarmName']}"
        return kwargs["AlarmName"], {"Arn": arn}

    def _create_aws_cloudwatch_dashboard(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        name = p.get("DashboardName", f"{stack.name}-{lid}")
        self.client("cloudwatch", stack.region).put_dashboard(DashboardName=name, DashboardBody=p["DashboardBody"])
        return name, {}

    # --- Resources recorded, not emulated (networking: the emulated functions reach the local
    # --- servers directly; RDS instances and parameter groups: the cluster is the server) -------
    def _recorded(self, stack: StackArtifact, lid: str, kind: str, d: Deployment) -> str:
        d.recorded.setdefault(kind, []).append(f"{stack.name}/{lid}")
        prefix = re.sub(r"[^a-z]", "", kind.rsplit("::", 1)[1].lower())[:8]
        return f"{prefix}-{hashlib.sha256(f'{stack.name}/{lid}'.encode()).hexdigest()[:17]}"

    def _create_aws_ec2_vpc(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        pid = self._recorded(stack, lid, "AWS::EC2::VPC", d)
        return pid, {"VpcId": pid, "CidrBlock": str(p.get("CidrBlock", "")), "DefaultSecurityGroup": f"sg-{pid[-17:]}"}

    def _create_aws_ec2_subnet(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        pid = self._recorded(stack, lid, "AWS::EC2::Subnet", d)
        return pid, {"SubnetId": pid, "AvailabilityZone": str(p.get("AvailabilityZone", f"{stack.region}a"))}

    def _create_aws_ec2_routetable(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        pid = self._recorded(stack, lid, "AWS::EC2::RouteTable", d)
        return pid, {"RouteTableId": pid}

    def _create_aws_ec2_subnetroutetableassociation(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> Any:
        return self._recorded(stack, lid, "AWS::EC2::SubnetRouteTableAssociation", d), {}

    def _create_aws_ec2_flowlog(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        return self._recorded(stack, lid, "AWS::EC2::FlowLog", d), {}

    def _create_aws_ec2_vpcendpoint(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        pid = self._recorded(stack, lid, "AWS::EC2::VPCEndpoint", d)
        d.log.append(f"{stack.region}: VPC endpoint for {p.get('ServiceName')} (recorded)")
        return pid, {"Id": pid}

    def _create_aws_ec2_securitygroup(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        pid = self._recorded(stack, lid, "AWS::EC2::SecurityGroup", d)
        return pid, {"GroupId": pid, "VpcId": str(p.get("VpcId", ""))}

    def _create_aws_ec2_vpcpeeringconnection(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> Any:
        """Recorded; whether it joins two VPCs is decided where a path is (offline/emulator/network.py)."""
        pid = "pcx-" + self._recorded(stack, lid, "AWS::EC2::VPCPeeringConnection", d).split("-", 1)[1]
        d.log.append(f"{stack.region}: VPC peering connection to {p.get('PeerRegion', stack.region)} (recorded)")
        return pid, {"Id": pid}

    def _create_aws_ec2_route(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        return self._recorded(stack, lid, "AWS::EC2::Route", d), {}

    def _create_aws_ec2_securitygroupingress(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> Any:
        return self._recorded(stack, lid, "AWS::EC2::SecurityGroupIngress", d), {}

    def _create_aws_ec2_securitygroupegress(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> Any:
        return self._recorded(stack, lid, "AWS::EC2::SecurityGroupEgress", d), {}

    # --- Secrets Manager ---------------------------------------------------------------------
    def _create_aws_secretsmanager_secret(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        name = p.get("Name", f"{stack.name}-{lid}")
        kwargs: dict[str, Any] = {
            "Name": name,
            "SecretString": _secret_string(p),
            "Description": p.get("Description", ""),
        }
        if p.get("KmsKeyId"):
            kwargs["KmsKeyId"] = p["KmsKeyId"]
        replicas = p.get("ReplicaRegions", [])
        if replicas:
            kwargs["AddReplicaRegions"] = [
                {"Region": r["Region"], **({"KmsKeyId": r["KmsKeyId"]} if r.get("KmsKeyId") else {})} for r in replicas
            ]
        arn = self.client("secretsmanager", stack.region).create_secret(**kwargs)["ARN"]
        for replica in replicas:
            set_replica_key(
                self.account,
                replica["Region"],
                arn.replace(f":{stack.region}:", f":{replica['Region']}:"),
                replica.get("KmsKeyId"),
            )
        return arn, {"Id": arn}

    def _read_secret(self, region: str) -> Callable[[str], str]:
        return lambda secret_id: self.client("secretsmanager", region).get_secret_value(SecretId=secret_id)[
            "SecretString"
        ]

    # --- RDS: Aurora PostgreSQL global database on real PostgreSQL servers (offline/emulator/aurora.py) --
    def _aurora(self, d: Deployment) -> Any:
        if d.aurora is None:
            d.aurora = AuroraEmulation()
        return d.aurora

    def _create_aws_rds_globalcluster(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        identifier = p.get("GlobalClusterIdentifier", f"{stack.name}-{lid}".lower())
        # The writer endpoint that always names the current primary's writer (DescribeGlobalClusters serves it;
        # the functions resolve it, offline/emulator/network.py).
        return identifier, {"GlobalEndpoint.Address": self._aurora(d).add_global_cluster(identifier, p)}

    def _create_aws_rds_dbsubnetgroup(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        return self._recorded(stack, lid, "AWS::RDS::DBSubnetGroup", d), {}

    def _create_aws_rds_dbclusterparametergroup(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> Any:
        return self._recorded(stack, lid, "AWS::RDS::DBClusterParameterGroup", d), {}

    def _create_aws_rds_dbinstance(self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment) -> Any:
        return self._recorded(stack, lid, "AWS::RDS::DBInstance", d), {}

    def _create_aws_rds_dbcluster(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        aurora = self._aurora(d)
        read = self._read_secret(stack.region)
        attrs = aurora.add_cluster(stack.region, lid, p, lambda value: dynamic_secret(value, read))
        self.progress(aurora.log[-1])
        identifier = p.get("DBClusterIdentifier", f"{stack.name}-{lid}".lower())
        return identifier, {**attrs, "DBClusterArn": f"arn:aws:rds:{stack.region}:{self.account}:cluster:{identifier}"}

    # --- Custom resources: the database schema, run by the real db_setup handler ---------------
    def _create_custom_recordsschema(
        self, stack: StackArtifact, lid: str, p: dict[str, Any], d: Deployment
    ) -> tuple[str, dict[str, str]]:
        response = run_custom_resource(self, stack, lid, p, d)
        return str(response.get("PhysicalResourceId", lid)), {k: str(v) for k, v in response.get("Data", {}).items()}


def _secret_string(p: dict[str, Any]) -> str:
    if "SecretString" in p:
        return str(p["SecretString"])
    spec = p.get("GenerateSecretString", {})
    import secrets as _secrets
    import string

    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?[]^_{|}~"
    alphabet = "".join(c for c in alphabet if c not in spec.get("ExcludeCharacters", ""))
    value = "".join(_secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec:
        document = json.loads(spec["SecretStringTemplate"])
        document[spec.get("GenerateStringKey", "password")] = value
        return json.dumps(document)
    return value


def _kms_tags(p: dict[str, Any]) -> dict[str, Any]:
    """A template's ``Tags`` as KMS takes them (tenant keys are tagged ``tenant``); nothing when untagged."""
    tags = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in p.get("Tags") or []]
    return {"Tags": tags} if tags else {}
