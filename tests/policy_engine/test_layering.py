"""The layering the packages exist for, checked on the whole import graph (every module of every
package, subpackages included, imports inside functions and under TYPE_CHECKING too):

- no import cycle among the project's modules (none is allowed);
- the emulator (offline/emulator) reads templates: it imports neither the verification, the
  runbooks, the command line nor the CDK code that made the templates;
- the tools decide with ``policy_engine`` and read assemblies with ``cloud_assembly`` (which sits on
  the engine), neither of which imports a tool; a construct library never imports a tool; the
  function code imports no CDK and nothing of the toolkit around it;
- review, benchmarks and the nag rules never import offline to read an assembly, to synthesize or
  for the command line (``stacks.synthesize``, ``cloud_assembly``, ``cli_support``);
- and, while the whole tree is parsed anyway, functions stay short (STYLE.md item 10).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_PROJECT = {"tests", "node_modules", "cdk.out", "review-out"}
# lambda_src is the root of the function zip: its modules import each other as top-level modules.
LAMBDA_ROOT = "lambda_src"

# package (or module) -> the packages and modules it must never import (a prefix matches submodules).
CDK = ("aws_cdk", "cdk_nag", "constructs", "stacks", "cdk_constructs", "app")
TOOLS = ("offline", "review", "benchmarks", "cli_support")
RUNTIME_BEYOND_SETTINGS = tuple(
    f"lambda_src.{p.relative_to(ROOT / 'lambda_src').with_suffix('').as_posix().replace('/', '.')}"
    for p in sorted((ROOT / "lambda_src").rglob("*.py"))
    if p.name != "__init__.py" and p.relative_to(ROOT / "lambda_src").as_posix() != "record_crypto/settings.py"
)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "offline.emulator": ("offline.verification", "offline.runbooks", "offline.__main__", *CDK),
    "offline.runbooks": ("offline.__main__", "offline.verification"),  # the drills run the runbooks
    "offline.verification": ("offline.__main__",),
    "review": ("offline", "cdk_constructs"),
    "cdk_constructs": (*TOOLS, "stacks"),  # a construct library never imports a tool (nag_rules included)
    "stacks": TOOLS,
    "policy_engine": (*TOOLS, *CDK, "cloud_assembly", "lambda_src"),
    # The assembly reader sits on the engine: the roles' access is decided with it (role_access), the
    # engine never reads an assembly.
    # ... and takes the names the toolkit shares (store kinds) from the runtime's settings, no other runtime module.
    "cloud_assembly": (*TOOLS, *CDK, *RUNTIME_BEYOND_SETTINGS),
    "cli_support": ("offline", "review", "benchmarks", "aws_cdk", "cdk_constructs", "stacks.app_builder"),
    "lambda_src": (*TOOLS, *CDK, "policy_engine", "cloud_assembly"),
    # The benchmarks measure the emulator (its moto patches, its server under load) and the Aurora
    # store's failover drills; they never import offline for an assembly, a synth or the command line.
    "benchmarks": ("offline.__main__", "offline.runbooks", "cdk_constructs"),
}
# (module, what it imports) that breaks a rule above today, with the work that removes it: the list
# only shrinks.
BENCHMARKS_MAY_IMPORT = ("offline.emulator", "offline.verification.failover_drill")
# Modules that run only as programs: nothing imports them.
ENTRY_POINTS = ("offline.__main__", "review.__main__", "benchmarks.__main__", "app")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def project_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(ROOT.glob("*.py")) + sorted(ROOT.glob("*/**/*.py")):
        top = path.relative_to(ROOT).parts[0]
        if top in NOT_PROJECT or top.startswith("."):
            continue
        modules[_module_name(path)] = path
    return modules


def _resolve(name: str) -> str | None:
    """The project module an imported name is (or is in), or None for a third-party name."""
    modules = project_modules()
    candidates = [name]
    if name.split(".")[0] in {m.split(".")[1] for m in modules if m.startswith(LAMBDA_ROOT + ".")}:
        candidates.append(f"{LAMBDA_ROOT}.{name}")  # record_crypto.settings, as the function code imports it
    for candidate in candidates:
        while candidate:
            if candidate in modules:
                return candidate
            candidate = candidate.rpartition(".")[0]
    return None


@cache
def imported_names(module: str) -> frozenset[str]:
    """Every name ``module`` imports (absolute, with relative imports made absolute)."""
    path = project_modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return frozenset(found)


@cache
def import_graph() -> dict[str, frozenset[str]]:
    return {
        module: frozenset(r for name in imported_names(module) if (r := _resolve(name)) and r != module)
        for module in project_modules()
    }


def strongly_connected(graph: dict[str, frozenset[str]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components of more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_packages_and_their_subpackages() -> None:
    graph = import_graph()
    assert {"offline.emulator.provisioner", "offline.verification.scenario", "cloud_assembly.reader"} <= set(graph)
    assert "offline.emulator.deployment" in graph["offline.emulator.provisioner"]
    assert "lambda_src.record_crypto.settings" in graph["lambda_src.record_crypto.service"]
    assert strongly_connected({"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset({"a"})}) == [
        frozenset({"a", "b"})
    ]


def test_no_import_cycles() -> None:
    cycles = strongly_connected(import_graph())
    assert not cycles, f"import cycles: {[sorted(c) for c in cycles]}"


def _modules_of(package: str) -> list[str]:
    return [m for m in project_modules() if _under(m, (package,))]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layers(package: str) -> None:
    assert _modules_of(package), f"no module under {package}"
    bad = {}
    for module in _modules_of(package):
        names = {n for n in imported_names(module) if _under(n, FORBIDDEN[package])}
        if package == "benchmarks":
            names |= {
                n for n in imported_names(module) if _under(n, ("offline",)) and not _under(n, BENCHMARKS_MAY_IMPORT)
            }
        if names:
            bad[module] = sorted(names)
    assert not bad, bad


def test_no_module_imports_a_command_line() -> None:
    bad = {m: sorted(n for n in imported_names(m) if _resolve(n) in ENTRY_POINTS) for m in project_modules()}
    assert not {m: n for m, n in bad.items() if n}


def test_the_tools_read_assemblies_with_one_reader_and_decide_with_one_engine() -> None:
    for module in (
        "offline.emulator.gateway",
        "review.policy",
        "cdk_constructs.nag_rules",
        "offline.verification.invariants",
    ):
        assert any(_under(n, ("policy_engine",)) for n in imported_names(module)), module
    for module in ("offline.emulator.provisioner", "review.assembly_view", "review.lint", "cdk_constructs.nag_rules"):
        assert any(_under(n, ("cloud_assembly",)) for n in imported_names(module)), module
    for module in ("offline.__main__", "review.__main__"):
        assert "stacks.synthesize" in imported_names(module), module


# About 60 lines (STYLE.md item 10), counted from ``def`` to the last line, so a construct's keyword-only
# props count too: the ceiling leaves room for them, not for a second screenful of body.
MAX_FUNCTION_LINES = 70


def test_functions_stay_short() -> None:
    long = {}
    for path in project_modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert not long, f"split these (about 60 lines at most): {long}"
