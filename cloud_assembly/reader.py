"""Read a synthesized cloud assembly (cdk.out): stacks, their regions, templates and order."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StackArtifact:
    name: str
    region: str
    account: str | None
    template: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)

    def resources(self, type_name: str | None = None) -> dict[str, dict[str, Any]]:
        res = self.template.get("Resources", {})
        return {k: v for k, v in res.items() if type_name is None or v["Type"] == type_name}


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
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        env = artifact.get("environment", "aws://unknown-account/unknown-region")
        account, region = env.removeprefix("aws://").split("/", 1)
        props = artifact.get("properties", {})
        template = json.loads((directory / props["templateFile"]).read_text())
        stacks[props.get("stackName", artifact_id)] = StackArtifact(
            name=props.get("stackName", artifact_id),
            region=region,
            account=None if account.startswith("unknown") else account,
            template=template,
            dependencies=[d for d in artifact.get("dependencies", [])],
        )
    names = set(stacks)
    for stack in stacks.values():
        stack.dependencies = [d for d in stack.dependencies if d in names]
    return CloudAssembly(directory=directory, stacks=stacks)
