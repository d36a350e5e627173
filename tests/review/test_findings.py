"""The review opens with its findings: who can decrypt records where, the paths by which an
administrator could grant itself use, every acknowledged compliance finding with its reason, and
what changed since the previous report; then a short key to reading it, for the deployed store only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.reader import load_assembly
from review.__main__ import main
from review.findings import VALIDATION_REPORT
from review.report import build_review, render_markdown
from stacks.synthesize import synthesize

ACCOUNT = "111122223333"


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("findings-cdk-out")
    synthesize({"mrk-toolkit:account": ACCOUNT}, str(out))
    return out


@pytest.fixture(scope="module")
def review(cdk_out: Path) -> dict[str, Any]:
    return build_review(load_assembly(cdk_out))


def _section(markdown: str, heading: str) -> str:
    return markdown.split(heading, 1)[1].split("\n## ", 1)[0]


def test_the_findings_come_first(review: dict[str, Any]) -> None:
    markdown = render_markdown(review)
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings[:4] == ["## Findings", "## Deployment", "## Architecture", "## How to read it"], headings


def test_who_can_decrypt_where_is_each_regions_reader_only(review: dict[str, Any]) -> None:
    allowed = {(r["region"], r["principal"]) for r in review["findings"]["decrypt"] if r["verdict"] == "allow"}
    assert allowed == {("us-east-2", "reader role (us-east-2)"), ("us-west-1", "reader role (us-west-1)")}
    section = _section(render_markdown(review), "## Findings")
    assert "| `us-west-1` | reader role (us-west-1) | allow | encryption context purpose=mrk-toolkit:record" in section
    assert "writer role" not in section.split("**Paths by which")[0], "a writer may not decrypt"


def test_the_self_grant_paths_name_the_principal_and_the_calls(review: dict[str, Any]) -> None:
    root = [r for r in review["findings"]["self_grant"] if r["principal"] == "account root user"]
    assert {r["region"] for r in root if r["kind"].startswith("multi-region key")} == {"us-east-2", "us-west-1"}
    assert all("kms:PutKeyPolicy" in r["via"] for r in root)
    section = _section(render_markdown(review), "## Findings")
    assert "- account root user: Decrypt, Encrypt, GenerateDataKey, ReEncrypt on the records key in us-east-2, " in (
        section
    )


def test_every_acknowledged_finding_is_listed_with_its_reason(review: dict[str, Any], cdk_out: Path) -> None:
    report = json.loads((cdk_out / VALIDATION_REPORT).read_text())
    suppressed = [s for plugin in report["pluginReports"] for s in plugin["suppressedViolations"]]
    assert suppressed, "the default deployment acknowledges some findings"
    section = _section(render_markdown(review), "## Findings")
    for finding in suppressed:
        assert f"`{finding['acknowledgedId']}`" in section
        assert finding["reason"] in section
    paths = {r for a in review["findings"]["acknowledged"] for r in a["resources"]}
    assert "MrkToolkit-Functions-us-west-1/Records/Reader/Function" in paths


def test_an_assembly_without_a_validation_report_says_so(cdk_out: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(cdk_out, tmp_path / "cdk.out"))
    (copy / VALIDATION_REPORT).unlink()
    review = build_review(load_assembly(copy))
    assert review["findings"]["acknowledged"] is None
    assert "the assembly has no validation report" in render_markdown(review)


def test_a_changed_policy_shows_in_the_diff_against_the_previous_report(cdk_out: Path, tmp_path: Path) -> None:
    """Run the review, let any role of any account decrypt in the us-west-1 key policy (no context),
    review again into the
    same folder: the changed access is listed as added in the findings, against the report it replaced."""
    out = tmp_path / "review-out"
    assert main(["--cdk-out", str(cdk_out), "--out", str(out)]) == 0
    first = (out / "policy-review.md").read_text()
    assert "no previous report to compare with (first run)" in first
    copy = Path(shutil.copytree(cdk_out, tmp_path / "edited"))
    path = copy / "MrkToolkit-Keys-us-west-1.template.json"
    template = json.loads(path.read_text())
    (key,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::KMS::ReplicaKey"]
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        if statement["Action"] == "kms:Decrypt" or statement["Action"] == ["kms:Decrypt"]:
            statement["Condition"] = {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}
    path.write_text(json.dumps(template))
    assert main(["--cdk-out", str(copy), "--out", str(out)]) == 0
    changes = json.loads((out / "policy-review.json").read_text())["changes"]
    assert changes["previous"] == str(out / "policy-review.json")
    added = [line for line in changes["added"] if "us-west-1 alias/mrk-toolkit/records: " in line]
    writers = "any other role matching arn:aws:iam::<account>:role/MrkToolkit/writer/*"
    assert f"us-west-1 alias/mrk-toolkit/records: {writers} Decrypt if-iam" in added, changes
    removed = [line for line in changes["removed"] if "alias/mrk-toolkit/records: " in line]
    assert removed and all(line.startswith("us-west-1 ") for line in removed), "us-east-2's key did not change"
    assert f"us-west-1 alias/mrk-toolkit/records: {writers} Decrypt deny, can self-grant via kms:PutKeyPolicy" in (
        removed
    )
    findings = _section((out / "policy-review.md").read_text(), "## Findings")
    assert "**Since the previous report**" in findings and "- added: us-west-1 alias/mrk-toolkit/records: " in findings
    again = tmp_path / "again"
    assert main(["--cdk-out", str(copy), "--out", str(again), "--previous", str(out / "policy-review.json")]) == 0
    assert "nothing changed" in (again / "policy-review.md").read_text()


def test_the_key_to_reading_it_is_a_short_table_of_this_store(review: dict[str, Any]) -> None:
    markdown = render_markdown(review)
    key = _section(markdown, "## How to read it")
    assert key.strip().splitlines()[0] == "| Term | Means |"
    terms = [line.split(" | ")[0].removeprefix("| ") for line in key.strip().splitlines()[2:]]
    assert "table columns" in terms and "secret columns" not in terms
    assert "Aurora" not in markdown and "secret" not in key.lower()


def test_a_missing_previous_report_is_one_line(
    cdk_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--cdk-out", str(cdk_out), "--out", str(tmp_path), "--previous", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--previous" in err[0], err
