"""The Makefile as documented: `make help` lists every verb and variable, the documented variables
reach the commands they are documented for, and no variable makes a verb overwrite a committed file."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from lambda_src.record_crypto.settings import STORE_AURORA_POSTGRESQL
from tests.infra.synth import REPO_ROOT

MAKEFILE = (REPO_ROOT / "Makefile").read_text()


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def phony_verbs() -> list[str]:
    (line,) = re.findall(r"^\.PHONY:(.*)$", MAKEFILE, re.M)
    return line.split()


def test_help_lists_every_verb_and_variable() -> None:
    result = make("help")
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^  ([a-z-]+) ", result.stdout, re.M))
    assert set(phony_verbs()) <= listed
    variables = set(re.findall(r"\$\(([A-Z]+)\)", MAKEFILE)) - {"BIN", "VENV", "CURDIR", "PATH", "CONTEXT"}
    assert variables == {"REGIONS", "ARGS", "QUICK", "PYTHON"}
    for name in variables:
        assert re.search(rf"^  {name}=", result.stdout, re.M), f"make help does not document {name}"


def test_plain_make_prints_help() -> None:
    assert "usage: make <verb>" in make("-n").stdout


@pytest.mark.parametrize("verb", ["demo", "synth"])
def test_regions_and_every_c_in_args_reach_the_synth(verb: str) -> None:
    args = "-c mrk-toolkit:primaryRegion=eu-west-1 -c mrk-toolkit:algorithmSuite=committing-unsigned"
    result = make("-n", verb, "REGIONS=us-west-1,eu-central-1", f"ARGS={args}")
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if ("synth" in x and "-o cdk.out" in x) or "--synth-to" in x]
    assert "-c mrk-toolkit:replicaRegions=us-west-1,eu-central-1" in line
    assert args in line


def test_synth_clears_the_previous_stack_list() -> None:
    lines = make("-n", "synth").stdout.splitlines()
    clear = next(i for i, x in enumerate(lines) if x.startswith("rm -f cdk.out/*.template.json"))
    assert clear < next(i for i, x in enumerate(lines) if "cdk synth" in x)


def test_synth_hides_the_cdk_clis_notices_and_keeps_its_exit_code() -> None:
    (line,) = [x for x in make("-n", "synth").stdout.splitlines() if "cdk synth" in x]
    assert line.startswith("set -o pipefail;") and "--no-notices" in line, line
    assert "feature flags are not configured" in line, "the flags count (no CLI switch) is filtered out"


def test_diagram_refuses_a_non_default_deployment() -> None:
    before = (REPO_ROOT / "README.md").read_text()
    result = make("diagram", "REGIONS=eu-west-1")
    assert result.returncode != 0
    assert "default deployment" in result.stderr
    assert (REPO_ROOT / "README.md").read_text() == before


def test_bench_quick_never_writes_the_committed_results() -> None:
    from benchmarks.__main__ import COMMITTED, _parser, output_path

    (line,) = [x for x in make("-n", "bench", "QUICK=1").stdout.splitlines() if "-m benchmarks" in x]
    args = shlex.split(line.split("-m benchmarks", 1)[1])
    assert "--quick" in args
    assert output_path(_parser().parse_args(args)) != COMMITTED


def test_destroy_passes_regions_and_args_to_the_command() -> None:
    result = make("-n", "destroy", "REGIONS=us-west-1,eu-west-1", "ARGS=--yes --region ap-south-1")
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if "-m offline destroy" in x]
    assert line.endswith(
        "-m offline destroy -c mrk-toolkit:replicaRegions=us-west-1,eu-west-1 --yes --region ap-south-1"
    )


def test_drill_runs_the_aurora_failover_drills_with_the_aurora_store() -> None:
    """`make help` says so, and the store in ARGS reaches `offline drill` (which takes it from the config)."""
    store = f"mrk-toolkit:store={STORE_AURORA_POSTGRESQL}"
    (drill,) = [x for x in make("help").stdout.splitlines() if x.startswith("  drill ")]
    assert f'ARGS="-c {store}"' in drill and "Aurora failover drills" in drill, drill
    result = make("-n", "drill", f"ARGS=-c {store}")
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if "-m offline drill" in x]
    assert line.split()[-4:] == ["offline", "drill", "-c", store], line
