"""What a security reviewer reads in the matrix: self-grant paths through key administration, the
key-administration column against the KeyAdministration statement, every table path (stream,
PartiQL, export/backup/restore), and access outside the columns never listed as "No access"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.reader import load_assembly
from review.report import (
    KEY_ADMIN_ACTIONS,
    KEY_READ_ACTIONS,
    TABLE_COLUMNS,
    build_review,
    render_markdown,
)
from stacks.synthesize import synthesize

REGIONS = ["us-east-2", "us-west-1"]


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("review-cdk-out")
    synthesize({"mrk-toolkit:account": "111122223333"}, str(out))
    return build_review(load_assembly(Path(out)))


def region_of(review: dict[str, Any], region: str) -> dict[str, Any]:
    (entry,) = [r for r in review["regions"] if r["region"] == region]
    return entry


def block(review: dict[str, Any], region: str, kind_prefix: str) -> dict[str, Any]:
    (found,) = [b for b in region_of(review, region)["matrix"] if b["resource_kind"].startswith(kind_prefix)]
    return found


def row(block: dict[str, Any], principal: str) -> dict[str, Any]:
    (found,) = [r for r in block["rows"] if r["principal"] == principal]
    return found


@pytest.mark.parametrize("region", REGIONS)
def test_root_shown_as_able_to_grant_itself_decrypt(review: dict[str, Any], region: str) -> None:
    mrk = block(review, region, "multi-region key")
    root = row(mrk, "account root user")
    for column in ("Decrypt", "GenerateDataKey"):
        assert root["cells"][column]["verdict"] == "deny"
        assert "kms:PutKeyPolicy" in root["cells"][column]["self_grant"]
    for app_role in (r for r in mrk["rows"] if r["principal_kind"] == "role"):
        assert not any("self_grant" in c for c in app_role["cells"].values()), app_role["principal"]
    markdown = render_markdown(review)
    assert "| account root user | deny, **can self-grant**" in markdown
    assert "may call kms:PutKeyPolicy" in markdown


def test_admin_column_and_statement_are_named_as_different_sets(review: dict[str, Any]) -> None:
    listed = {
        action
        for entry in review["regions"]
        for key in entry["keys"]
        for stmt in key["statements"]
        if stmt["sid"] == "KeyAdministration"
        for action in stmt["actions"]
    }
    assert listed, "no KeyAdministration statement found"
    assert listed <= set(KEY_ADMIN_ACTIONS) | set(KEY_READ_ACTIONS), listed - set(KEY_ADMIN_ACTIONS)
    legend = review["legend"]
    for action in KEY_ADMIN_ACTIONS:
        assert f"`{action}`" in legend
    counted = len(listed & set(KEY_ADMIN_ACTIONS))
    assert f"lists {len(listed)} actions, not the same set: {counted} of the column's" in legend


def test_table_columns_cover_stream_partiql_export_and_restore() -> None:
    actions = {a for _, column in TABLE_COLUMNS for a in column}
    for action in (
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:PartiQLSelect",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
        "dynamodb:ExportTableToPointInTime",
        "dynamodb:RestoreTableToPointInTime",
    ):
        assert action in actions


@pytest.mark.parametrize("region", REGIONS)
def test_functions_cannot_read_the_stream_or_export(review: dict[str, Any], region: str) -> None:
    table = block(review, region, "table replica")
    for kind in ("reader", "writer"):
        cells = row(table, f"{kind} role ({region})")["cells"]
        assert cells["stream read"]["verdict"] == "deny"
        assert cells["export / backup / restore"]["verdict"] == "deny"
    assert row(table, "account root user")["cells"]["stream read"]["verdict"] == "allow"


@pytest.mark.parametrize("region", REGIONS)
def test_a_service_with_describe_key_is_not_listed_as_no_access(review: dict[str, Any], region: str) -> None:
    sse = block(review, region, "table SSE key")
    dynamodb = row(sse, "service dynamodb.amazonaws.com")
    assert dynamodb["other_actions"] == ["kms:DescribeKey"]
    section = render_markdown(review).split(f"#### {sse['resource']} — table SSE key")[1].split("####")[0]
    no_access = [line for line in section.splitlines() if line.startswith("No access:")]
    assert all("service dynamodb.amazonaws.com" not in line for line in no_access)
    assert "Other access only: service dynamodb.amazonaws.com: `kms:DescribeKey`" in section
