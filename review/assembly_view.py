"""The review's view of a synthesized cloud assembly: every value resolved to a readable,
account-free form (the reading itself, construct paths and intrinsics, is cloud_assembly's).

Physical names do not exist before deploy, so each resource gets a deterministic symbolic one
built from its construct path (``<MrkToolkit-Keys-us-west-1/TableKey/Key>``); the account is
``<account>`` whether the assembly was synthesized account-agnostic or for a real account.
Multi-region replica keys take the key id of their primary (``mrk-<...>``), as in AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cloud_assembly.intrinsics import Resolver, UnsupportedTemplate, partition
from cloud_assembly.reader import CloudAssembly, StackArtifact

ACCOUNT = "<account>"


@dataclass(frozen=True)
class Resource:
    stack: StackArtifact
    logical_id: str
    type: str
    properties: dict[str, Any]  # resolved
    path: str  # construct path, e.g. MrkToolkit-Keys-us-west-1/TableKey/Key

    @property
    def region(self) -> str:
        return self.stack.region


class _SymbolicResolver(Resolver):
    def __init__(self, view: AssemblyView, stack: StackArtifact) -> None:
        params = {name: f"<{name}>" for name in stack.template.get("Parameters", {})}
        super().__init__(
            stack_name=stack.name,
            region=stack.region,
            account=ACCOUNT,
            physical_ids={},
            attributes={},
            stack_output=view.stack_output,
            parameters=params,
        )
        self.view = view
        self.stack = stack

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::") or name in self.parameters:
            return super().ref(name)
        return self.view.physical(self.stack, name, "Ref")

    def get_att(self, logical_id: str, attribute: str) -> str:
        return self.view.physical(self.stack, logical_id, attribute)

    def unresolved(self, value: Any, error: UnsupportedTemplate) -> Any:
        return f"<unresolved {json.dumps(value, sort_keys=True)}>"


class AssemblyView:
    """Resolved resources of every stack, with symbolic physical ids."""

    def __init__(self, assembly: CloudAssembly) -> None:
        self.assembly = assembly
        self.accounts = sorted({s.account for s in assembly.stacks.values() if s.account})
        self._resolvers = {name: _SymbolicResolver(self, s) for name, s in assembly.stacks.items()}
        self._physical: dict[tuple[str, str, str], str] = {}
        self._resolving: set[tuple[str, str, str]] = set()

    # -- values ---------------------------------------------------------------------------------
    def scrub(self, value: Any) -> Any:
        """Replace a literal account id (an assembly synthesized for one account) by ``<account>``."""
        if isinstance(value, str):
            for account in self.accounts:
                value = value.replace(account, ACCOUNT)
            return value
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        return value

    def resolve(self, stack: StackArtifact, value: Any) -> Any:
        return self.scrub(self._resolvers[stack.name].resolve(value))

    def stack_output(self, stack_name: str, region: str, output_name: str) -> str:
        stack = self.assembly.stacks.get(stack_name)
        if stack is None or output_name not in stack.template.get("Outputs", {}):
            return f"<output {stack_name}.{output_name}>"
        return self.resolve(stack, stack.template["Outputs"][output_name]["Value"])

    # -- resources ------------------------------------------------------------------------------
    def resources(self, type_name: str | None = None) -> Iterator[Resource]:
        for stack_name in sorted(self.assembly.stacks):
            stack = self.assembly.stacks[stack_name]
            for logical_id in sorted(stack.resources(type_name)):
                yield self.resource(stack, logical_id)

    def resource(self, stack: StackArtifact, logical_id: str) -> Resource:
        raw = stack.template["Resources"][logical_id]
        return Resource(
            stack=stack,
            logical_id=logical_id,
            type=raw["Type"],
            properties=self.resolve(stack, raw.get("Properties", {})),
            path=self.construct_path(stack, logical_id),
        )

    def construct_path(self, stack: StackArtifact, logical_id: str) -> str:
        return stack.construct_path(logical_id)

    def physical(self, stack: StackArtifact, logical_id: str, attribute: str) -> str:
        """The symbolic value of ``Ref``/``Fn::GetAtt`` on a resource."""
        key = (stack.name, logical_id, attribute)
        if key in self._physical:
            return self._physical[key]
        if logical_id not in stack.template.get("Resources", {}) or key in self._resolving:
            return f"<{stack.name}/{logical_id}.{attribute}>"
        self._resolving.add(key)
        try:
            value = self._compute_physical(stack, logical_id, attribute)
        finally:
            self._resolving.discard(key)
        self._physical[key] = value
        return value

    def _compute_physical(self, stack: StackArtifact, logical_id: str, attribute: str) -> str:
        raw = stack.template["Resources"][logical_id]
        props = raw.get("Properties", {})
        type_name = raw["Type"]
        region, p = stack.region, partition(stack.region)
        name = f"<{self.construct_path(stack, logical_id)}>"

        def prop(key: str) -> Any:
            value = props.get(key)
            return self.resolve(stack, value) if value is not None else None

        if type_name in ("AWS::KMS::Key", "AWS::KMS::ReplicaKey"):
            if type_name == "AWS::KMS::ReplicaKey" and prop("PrimaryKeyArn"):
                key_id = str(prop("PrimaryKeyArn")).rsplit("key/", 1)[-1]
            else:
                key_id = f"mrk-{name}" if prop("MultiRegion") in (True, "true") else name
            arn = f"arn:{p}:kms:{region}:{ACCOUNT}:key/{key_id}"
            return arn if attribute == "Arn" else key_id
        if type_name == "AWS::KMS::Alias":
            return str(prop("AliasName") or name)
        if type_name == "AWS::IAM::Role":
            role_name = str(prop("RoleName") or name)
            arn = f"arn:{p}:iam::{ACCOUNT}:role{prop('Path') or '/'}{role_name}"
            return {"Arn": arn, "RoleId": f"<{role_name}.RoleId>"}.get(attribute, role_name)
        if type_name == "AWS::IAM::ManagedPolicy":
            policy_name = str(prop("ManagedPolicyName") or name)
            return f"arn:{p}:iam::{ACCOUNT}:policy{prop('Path') or '/'}{policy_name}"
        if type_name == "AWS::Logs::LogGroup":
            group = str(prop("LogGroupName") or name)
            return f"arn:{p}:logs:{region}:{ACCOUNT}:log-group:{group}:*" if attribute == "Arn" else group
        if type_name == "AWS::Lambda::Function":
            function = str(prop("FunctionName") or name)
            return f"arn:{p}:lambda:{region}:{ACCOUNT}:function:{function}" if attribute == "Arn" else function
        if type_name == "AWS::RDS::GlobalCluster" and attribute == "Ref":
            return str(prop("GlobalClusterIdentifier") or name)
        if type_name == "AWS::SecretsManager::Secret":
            # Secrets Manager appends 6 random characters to the name; a replica keeps name and suffix.
            secret = str(prop("Name") or name)
            return f"arn:{p}:secretsmanager:{region}:{ACCOUNT}:secret:{secret}-<suffix>"
        if type_name in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
            table = str(prop("TableName") or name)
            arn = f"arn:{p}:dynamodb:{region}:{ACCOUNT}:table/{table}"
            return {"Arn": arn, "StreamArn": f"{arn}/stream/<stream>"}.get(attribute, table)
        if type_name == "AWS::SSM::Parameter" and attribute == "Ref":
            return str(prop("Name") or name)
        if type_name == "AWS::SNS::Topic":
            arn = f"arn:{p}:sns:{region}:{ACCOUNT}:{prop('TopicName') or name}"
            return {"TopicName": str(prop("TopicName") or name)}.get(attribute, arn)
        return name if attribute == "Ref" else f"{name[:-1]}.{attribute}>"
