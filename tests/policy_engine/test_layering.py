"""The layering the engine exists for: the tools and the construct library decide with
``policy_engine`` and never import one another for it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "cdk_constructs": {"review", "offline", "stacks"},  # a construct library never imports a tool
    "offline": {"cdk_constructs", "review"},  # the emulator reads templates, not the CDK code
    "review": {"cdk_constructs"},
    "policy_engine": {"offline", "review", "cdk_constructs", "stacks", "aws_cdk"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layers(package: str) -> None:
    bad = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package])
        for path in (ROOT / package).glob("*.py")
        if _imports(path) & FORBIDDEN[package]
    }
    assert not bad, bad


def test_the_policy_tools_use_the_engine() -> None:
    for module in (
        "offline/emulator/gateway.py",
        "review/policy.py",
        "cdk_constructs/nag_rules.py",
        "offline/verification/invariants.py",
    ):
        assert "policy_engine" in _imports(ROOT / module), module
