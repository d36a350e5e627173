"""Read a synthesized cloud assembly (cdk.out): stacks, their regions, templates, order, and the
construct path of each resource. The one reader of the assembly directory, for the emulator,
the runbooks and the review."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_ARTIFACT = "aws:cloudformation:stack"


@dataclass
class StackArtifact:
    name: str
    region: str
    account: str | None
    template: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    template_file: Path | None = None  # where the template is, in the assembly directory
    # logical id -> construct path, from the assembly's stack metadata (written whether or not the
    # templates carry ``aws:cdk:path``, which only the CLI turns on)
    construct_paths: dict[str, str] = field(default_factory=dict)

    def resources(self, type_name: str | None = None) -> dict[str, dict[str, Any]]:
        res = self.template.get("Resources", {})
        return {k: v for k, v in res.items() if type_name is None or v["Type"] == type_name}

    def construct_path(self, logical_id: str) -> str:
        """The path of the construct that made a resource (``MrkToolkit-Keys-us-west-1/TableKey/Key``)."""
        resource = self.template["Resources"][logical_id]
        path = (
            self.construct_paths.get(logical_id)
            or (resource.get("Metadata") or {}).get("aws:cdk:path")
            or f"{self.name}/{logical_id}"
        )
        return path.removesuffix("/Resource").removesuffix("/Default")


@dataclass
class CloudAssembly:
    directory: Path
    stacks: dict[str, StackArtifact]

    def waves(self) -> list[list[StackArtifact]]:
        """Stacks grouped into deployment waves (each wave depends only on earlier ones)."""
        remaining = dict(self.stacks)
        done: set[str] = set()
        waves: list[list[StackArtifact]] = []
        while remaining:
            wave = [s for s in remaining.values() if all(d in done for d in s.dependencies)]
            if not wave:
                raise ValueError(f"cycle in stack dependencies: {sorted(remaining)}")
            wave.sort(key=lambda s: s.name)
            waves.append(wave)
            for s in wave:
                done.add(s.name)
                del remaining[s.name]
        return waves


def load_assembly(directory: str | Path) -> CloudAssembly:
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} not found: synthesize first (make synth)")
    manifest = json.loads(manifest_path.read_text())
    stacks: dict[str, StackArtifact] = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != STACK_ARTIFACT:
            continue
        env = artifact.get("environment", "aws://unknown-account/unknown-region")
        account, region = env.removeprefix("aws://").split("/", 1)
        props = artifact.get("properties", {})
        name = props.get("stackName", artifact_id)
        stacks[name] = StackArtifact(
            name=name,
            region=region,
            account=None if account.startswith("unknown") else account,
            template=json.loads((directory / props["templateFile"]).read_text()),
            dependencies=[d for d in artifact.get("dependencies", [])],
            template_file=directory / props["templateFile"],
            construct_paths=_construct_paths(directory, artifact),
        )
    names = set(stacks)
    for stack in stacks.values():
        stack.dependencies = [d for d in stack.dependencies if d in names]
    return CloudAssembly(directory=directory, stacks=stacks)


def _construct_paths(directory: Path, artifact: Mapping[str, Any]) -> dict[str, str]:
    """logical id -> construct path, from a stack artifact's metadata (inline or in its own file)."""
    metadata = dict(artifact.get("metadata") or {})
    extra = artifact.get("additionalMetadataFile")
    if extra and (directory / extra).is_file():
        metadata.update(json.loads((directory / extra).read_text()))
    paths: dict[str, str] = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry.get("type") == "aws:cdk:logicalId" and isinstance(entry.get("data"), str):
                paths[entry["data"]] = path.lstrip("/")
    return paths
