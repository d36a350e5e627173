"""Edit a copy of a synthesized assembly the way a bad change or a hand-edited template would."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline.verification.checks import Report
from offline.verification.emulated import run_offline

LAG = 0.3
Mutation = Callable[[dict[str, Any]], None]


def edited(src: Path, dst: Path, edits: dict[str, Mutation]) -> Path:
    """A copy of ``src`` with each named stack's template changed by its mutation."""
    shutil.copytree(src, dst)
    for stack, mutate in edits.items():
        path = dst / f"{stack}.template.json"
        template = json.loads(path.read_text())
        mutate(template)
        path.write_text(json.dumps(template))
    return dst


def resources(template: dict[str, Any], type_name: str, contains: str = "") -> list[dict[str, Any]]:
    return [r for lid, r in template["Resources"].items() if r["Type"] == type_name and contains in lid]


def failures(report: Report) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


def run(cdk_out: Path, tmp_path: Path) -> Report:
    return run_offline(cdk_out=cdk_out, lag_seconds=LAG, progress=lambda _line: None, log_dir=tmp_path / "logs")


def policy_documents(template: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for res in template["Resources"].values():
        props = res.get("Properties", {})
        for name in ("KeyPolicy", "PolicyDocument"):
            if name in props:
                out.append(props[name])
    return out


def drop_condition_keys(template: dict[str, Any], prefix: str, *, kinds: tuple[str, ...]) -> int:
    """Remove every condition key starting with ``prefix`` from the policies of ``kinds``
    (``KeyPolicy`` and/or ``PolicyDocument``); returns how many were removed."""
    removed = 0
    for res in template["Resources"].values():
        props = res.get("Properties", {})
        for kind in kinds:
            for stmt in props.get(kind, {}).get("Statement", []):
                for operator in list(stmt.get("Condition", {})):
                    pairs = stmt["Condition"][operator]
                    for key in [k for k in pairs if k.lower().startswith(prefix.lower())]:
                        del pairs[key]
                        removed += 1
                    if not pairs:
                        del stmt["Condition"][operator]
                if stmt.get("Condition") == {}:
                    del stmt["Condition"]
    return removed
