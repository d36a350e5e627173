"""The deployment as the synthesized templates describe it, for cloud_assembly/role_access.py: what
each role may do can be computed before anything is deployed (the same questions the main job
asks of the deployment read back)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloud_assembly.reader import CloudAssembly
from cloud_assembly.role_access import DeployedRole, DeploymentView, StackResource, arn_of
from policy_engine import as_list
from review.assembly_view import ACCOUNT, AssemblyView, Resource, partition

ManagedPolicy = Callable[[str], Any]  # an AWS managed policy's ARN -> its document (None: unknown)
IDENTITY = {"SecurityGroup": "GroupId"}  # the attribute that names a resource, where it is not Ref


def _resources(view: AssemblyView, res: Resource) -> list[StackResource]:
    p = partition(res.region)
    if res.type == "AWS::DynamoDB::GlobalTable":
        name = view.physical(res.stack, res.logical_id, "Ref")
        regions = [str(r.get("Region")) for r in res.properties.get("Replicas", [])] or [res.region]
        return [
            StackResource(res.stack.name, r, res.logical_id, res.type, arn_of(res.type, r, ACCOUNT, p, name))
            for r in regions
        ]
    physical = view.physical(res.stack, res.logical_id, IDENTITY.get(res.type.rsplit("::", 1)[1], "Ref"))
    arn = arn_of(res.type, res.region, ACCOUNT, p, physical)
    out = [StackResource(res.stack.name, res.region, res.logical_id, res.type, arn)]
    if res.type == "AWS::SecretsManager::Secret" and arn:
        for replica in res.properties.get("ReplicaRegions", []):
            region = str(replica.get("Region"))
            replica_arn = arn.replace(f":{res.region}:", f":{region}:", 1)
            out.append(StackResource(res.stack.name, region, res.logical_id, res.type, replica_arn))
    return out


def _policies(view: AssemblyView, role: Resource, managed_policy: ManagedPolicy) -> list[tuple[str, Any]]:
    name = view.physical(role.stack, role.logical_id, "Ref")
    out: list[tuple[str, Any]] = [
        (str(p.get("PolicyName")), p.get("PolicyDocument")) for p in role.properties.get("Policies", [])
    ]
    documents = {}
    for res in view.resources():
        if res.type in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            label = f"{res.stack.name}-{res.logical_id}"
            documents[view.physical(res.stack, res.logical_id, "Ref")] = (label, res.properties.get("PolicyDocument"))
            if name in as_list(res.properties.get("Roles")):
                out.append((label, res.properties.get("PolicyDocument")))
    for arn in as_list(role.properties.get("ManagedPolicyArns")):
        if arn in documents:
            out.append(documents[arn])
        elif ":iam::aws:policy/" in str(arn):
            out.append((str(arn).rsplit("/", 1)[-1], managed_policy(str(arn)) or {}))
    return out


def deployment_view(assembly: CloudAssembly, *, managed_policy: ManagedPolicy = lambda arn: None) -> DeploymentView:
    """Roles, resources and key policies as the templates would deploy them (symbolic names for
    what exists only once deployed; ``managed_policy`` supplies AWS managed policies)."""
    view = AssemblyView(assembly)
    resources: list[StackResource] = []
    roles: list[DeployedRole] = []
    key_policies: dict[str, Any] = {}
    trust_policies: dict[str, Any] = {}
    tags: dict[str, dict[str, str]] = {}
    for res in view.resources():
        if res.type == "AWS::IAM::Role":
            arn = view.physical(res.stack, res.logical_id, "Arn")
            trust_policies[arn] = res.properties.get("AssumeRolePolicyDocument") or {}
            policies = tuple(_policies(view, res, managed_policy))
            roles.append(DeployedRole(res.stack.name, res.region, res.logical_id, arn, policies))
            continue
        for item in _resources(view, res):
            resources.append(item)
            if item.type in ("AWS::KMS::Key", "AWS::KMS::ReplicaKey") and item.arn:
                key_policies[item.arn] = res.properties.get("KeyPolicy") or {}
                tags[item.arn] = {str(t.get("Key")): str(t.get("Value")) for t in res.properties.get("Tags") or []}
    regions = {s.region for s in assembly.stacks.values()}
    return DeploymentView(
        ACCOUNT, partition(min(regions)), tuple(resources), tuple(roles), key_policies, trust_policies, tags
    )
