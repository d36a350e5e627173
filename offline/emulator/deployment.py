"""What the emulator has deployed: the stacks, their resources as deployed, the functions they
define, and what a change did. Shared by the provisioner, the resource lifecycle, the functions
host and the Aurora emulation (none of which imports another for these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud_assembly.reader import CloudAssembly, StackArtifact


@dataclass
class FunctionSpec:
    """A function as the template defines it (moto's Lambda is not used to run it)."""

    stack: str
    logical_id: str
    region: str
    name: str
    arn: str
    handler: str
    runtime: str
    role_arn: str
    environment: dict[str, str]
    log_group: str | None
    timeout: int
    memory: int

    @property
    def kind(self) -> str:
        return self.handler.split(".", 1)[0]


@dataclass
class DeployedResource:
    """One resource as deployed: its physical id (what Ref returns), attributes and the
    properties it was deployed with (resolved), and what happens to it when it goes."""

    logical_id: str
    type: str
    physical_id: str
    attributes: dict[str, str]
    properties: dict[str, Any]
    deletion_policy: str = "Delete"
    update_replace_policy: str = "Delete"


@dataclass
class DeployedStack:
    artifact: StackArtifact  # the template it was last deployed with
    resources: dict[str, DeployedResource] = field(default_factory=dict)
    status: str = "CREATE_IN_PROGRESS"
    reason: str = ""

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def region(self) -> str:
        return self.artifact.region


@dataclass(frozen=True)
class Change:
    """What an update or a deletion did to one resource."""

    stack: str
    logical_id: str
    type: str
    action: str  # create, update, replace, delete, retain
    detail: str = ""

    def render(self) -> str:
        return f"{self.action:<7} {self.stack}/{self.logical_id} ({self.type})" + (
            f": {self.detail}" if self.detail else ""
        )


@dataclass
class Deployment:
    account: str
    assembly: CloudAssembly  # the assembly last applied
    stacks: dict[str, DeployedStack] = field(default_factory=dict)  # what is deployed now
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # stack -> name -> value
    functions: list[FunctionSpec] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)  # region -> table name
    stream_arns: dict[str, str] = field(default_factory=dict)  # region -> stream ARN
    keys: dict[str, dict[str, str]] = field(default_factory=dict)  # stack/logical -> attrs
    log: list[str] = field(default_factory=list)
    # offline.emulator.aurora.AuroraEmulation when the templates define a global database (typed Any: the
    # emulation imports the functions host, which imports this module).
    aurora: Any = None
    recorded: dict[str, list[str]] = field(default_factory=dict)  # resource type -> stack/logical ids (no-ops)
    # (region, resource): RDS resources a DeletionPolicy or UpdateReplacePolicy left in place (still served:
    # offline/emulator/rds_leftovers.py)
    retained_rds: list[tuple[str, DeployedResource]] = field(default_factory=list)

    def function(self, region: str, kind: str) -> FunctionSpec:
        for fn in self.functions:
            if fn.region == region and fn.kind == kind:
                return fn
        raise KeyError(f"no {kind} function in {region}")
