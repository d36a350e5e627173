"""`python -m review`: one-line errors, and a committed README only ever gets the default deployment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from review.__main__ import main
from tests.infra.synth import REPO_ROOT
from tests.offline.test_cli import assert_one_line, run_cli


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--cdk-out", "/nonexistent/cdk.out"], ["does not exist", "make synth"]),
        (["-c", "mrk-toolkit:replicaRegions=us-nowhere-1"], ["us-nowhere-1", "did you mean"]),
        (["--cdk-out", "cdk.out", "-c", "mrk-toolkit:replicaRegions=eu-west-1"], ["drop --cdk-out"]),
        (["readme", "/nonexistent/README.md"], ["no such file"]),
        (["readme", "README.md", "-c", "mrk-toolkit:replicaRegions=eu-west-1"], ["default deployment"]),
        (["--bogus"], ["unrecognized arguments"]),
    ],
)
def test_mistakes_are_one_line(args: list[str], needles: list[str]) -> None:
    assert_one_line(run_cli("-m", "review", *args), *needles)


def _one_stack_assembly(directory: Path, region: str) -> Path:
    directory.mkdir()
    (directory / "S.template.json").write_text(json.dumps({"Resources": {}}))
    artifact = {
        "type": "aws:cloudformation:stack",
        "environment": f"aws://unknown-account/{region}",
        "properties": {"templateFile": "S.template.json", "stackName": "S"},
    }
    (directory / "manifest.json").write_text(json.dumps({"artifacts": {"S": artifact}}))
    return directory


def test_committed_readme_refuses_a_non_default_assembly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cdk_out = _one_stack_assembly(tmp_path / "cdk.out", "eu-west-1")
    before = (REPO_ROOT / "README.md").read_text()
    assert main(["readme", str(REPO_ROOT / "README.md"), "--cdk-out", str(cdk_out)]) == 2
    assert "not the default" in capsys.readouterr().err
    assert (REPO_ROOT / "README.md").read_text() == before


def test_an_uncommitted_copy_takes_any_deployment(tmp_path: Path) -> None:
    cdk_out = _one_stack_assembly(tmp_path / "cdk.out", "eu-west-1")
    copy = tmp_path / "OTHER.md"
    shutil.copy(REPO_ROOT / "README.md", copy)
    assert main(["readme", str(copy), "--cdk-out", str(cdk_out)]) == 0
    assert "eu-west-1" in copy.read_text()


def test_template_linters_missing_assembly_is_one_line() -> None:
    assert_one_line(run_cli("-m", "review.lint", "--cdk-out", "/nonexistent/cdk.out"), "make synth")
