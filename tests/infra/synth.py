"""Synthesize the toolkit's app for a config, once per test session, without bundling."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from stacks.app_builder import ToolkitStacks, add_compliance_checks, build_stacks
from stacks.config import ToolkitConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "111122223333"
_TEMP_DIRS: list[str] = []


def temp_outdir(prefix: str) -> str:
    """A temp dir for an app's assembly, removed when the test process exits (tests leave nothing in /tmp)."""
    path = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(path)
    return path


@atexit.register
def _remove_temp_dirs() -> None:
    for path in _TEMP_DIRS:
        shutil.rmtree(path, ignore_errors=True)


def cdk_json_context() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def context_for(**overrides: Any) -> dict[str, Any]:
    ctx = cdk_json_context()
    ctx["mrk-toolkit:account"] = ACCOUNT
    ctx.update({f"mrk-toolkit:{k}": v for k, v in overrides.items()})
    return ctx


@dataclass
class Synthesized:
    config: ToolkitConfig
    stacks: ToolkitStacks
    assembly: Any
    templates: dict[str, dict[str, Any]]  # by stack name

    def template(self, stack: cdk.Stack) -> Template:
        return Template.from_json(self.templates[stack.stack_name])

    def raw(self, stack: cdk.Stack) -> dict[str, Any]:
        return self.templates[stack.stack_name]


def synthesize(context: dict[str, Any], *, nag: bool = False) -> Synthesized:
    outdir = temp_outdir("mrk-toolkit-test-")
    # Skip bundling: tests read templates, not function zips (the CLI refuses aws:* context keys).
    app = cdk.App(context=context, outdir=outdir, post_cli_context={"aws:cdk:bundling-stacks": []})
    config = load_config(app.node.get_all_context())
    stacks = build_stacks(app, config)
    if nag:
        add_compliance_checks(app, config)
    assembly = app.synth()
    templates = {s.stack_name: s.template for s in assembly.stacks}
    return Synthesized(config=config, stacks=stacks, assembly=assembly, templates=templates)
