"""The policy review of the default deployment: the matrix says what the design promises, and the
output is deterministic. One assembly, synthesized for an explicit account, shared by the module."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.reader import load_assembly
from review.__main__ import main
from review.diagram import mermaid
from review.readme import END, START, MarkersMissing, refresh, with_diagram
from review.report import build_review, render_markdown
from stacks.synthesize import synthesize

ACCOUNT = "111122223333"  # must never appear in the output


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("review-cdk-out")
    synthesize({"mrk-toolkit:account": ACCOUNT}, str(out))
    return out


@pytest.fixture(scope="module")
def review(cdk_out: Path) -> dict[str, Any]:
    return build_review(load_assembly(cdk_out))


def blocks(review: dict[str, Any], region: str, kind_prefix: str) -> list[dict[str, Any]]:
    (entry,) = [r for r in review["regions"] if r["region"] == region]
    found = [b for b in entry["matrix"] if b["resource_kind"].startswith(kind_prefix)]
    assert found, f"no {kind_prefix} in {region}"
    return found


def who(block: dict[str, Any], column: str, verdict: str) -> list[str]:
    return [row["principal"] for row in block["rows"] if row["cells"][column]["verdict"] == verdict]


REGIONS = ["us-east-2", "us-west-1"]


def test_review_covers_every_region_key_table_and_role(review: dict[str, Any]) -> None:
    assert review["regions_order"] == REGIONS
    for region in review["regions"]:
        kinds = sorted(k["kind"] for k in region["keys"])
        mrk = "multi-region key (primary)" if region["primary"] else "multi-region key (replica)"
        trail = ["audit trail key"] if region["primary"] else []  # one multi-region trail, in the primary
        assert kinds == sorted([mrk, "table SSE key", "log group key", "alarm topic key", *trail])
        assert [t["label"] for t in region["tables"]] == [f"mrk-toolkit-records ({region['region']})"]
        assert sorted(r["label"] for r in region["roles"]) == [
            f"reader role ({region['region']})",
            f"writer role ({region['region']})",
        ]
        for key in region["keys"]:
            assert key["statements"], key["label"]
            assert all({"sid", "effect", "principals", "actions", "conditions"} <= set(s) for s in key["statements"])


@pytest.mark.parametrize("region", REGIONS)
def test_only_the_local_writer_may_generate_data_keys_on_the_mrk(review: dict[str, Any], region: str) -> None:
    (mrk,) = blocks(review, region, "multi-region key")
    assert who(mrk, "GenerateDataKey", "allow") == [f"writer role ({region})"]
    # New roles under the writer path would need their own IAM policy: the path is the trust boundary.
    assert who(mrk, "GenerateDataKey", "if-iam") == [
        "any other role matching arn:aws:iam::<account>:role/MrkToolkit/writer/*"
    ]
    (writer,) = [r for r in mrk["rows"] if r["principal"] == f"writer role ({region})"]
    assert (
        "kms:EncryptionContext:purpose StringEquals mrk-toolkit:record"
        in writer["cells"]["GenerateDataKey"]["requires"]
    )


@pytest.mark.parametrize("region", REGIONS)
def test_only_the_local_reader_may_decrypt_with_the_mrk(review: dict[str, Any], region: str) -> None:
    (mrk,) = blocks(review, region, "multi-region key")
    assert who(mrk, "Decrypt", "allow") == [f"reader role ({region})"]
    assert who(mrk, "Decrypt", "if-iam") == ["any other role matching arn:aws:iam::<account>:role/MrkToolkit/reader/*"]
    for column in ("Encrypt", "ReEncrypt"):
        assert who(mrk, column, "allow") + who(mrk, column, "if-iam") == []


@pytest.mark.parametrize("region", REGIONS)
def test_app_roles_cannot_use_the_sse_key_but_dynamodb_can_through_kms_via_service(
    review: dict[str, Any], region: str
) -> None:
    (sse,) = blocks(review, region, "table SSE key")
    for row in sse["rows"]:
        if row["principal_kind"] == "role":
            assert {c["verdict"] for c in row["cells"].values()} == {"deny"}, row["principal"]
    via = f"DynamoDB on the account's behalf (kms:ViaService dynamodb.{region}.amazonaws.com)"
    for column in ("GenerateDataKey", "Decrypt", "Encrypt"):
        assert who(sse, column, "allow") == [via]
    (dynamodb,) = [r for r in sse["rows"] if r["principal"] == via]
    assert list(dynamodb["cells"]["key administration"]["actions"]) == ["kms:CreateGrant"]
    # ... and DynamoDB may not use the client-side key.
    (mrk,) = blocks(review, region, "multi-region key")
    (dynamodb,) = [r for r in mrk["rows"] if r["principal"] == via]
    assert {c["verdict"] for c in dynamodb["cells"].values()} == {"deny"}


@pytest.mark.parametrize("region", REGIONS)
def test_functions_reach_only_their_own_table_replica(review: dict[str, Any], region: str) -> None:
    (table,) = blocks(review, region, "table replica")
    roles = {r["principal"]: r["cells"] for r in table["rows"] if r["principal_kind"] == "role"}
    assert list(roles[f"writer role ({region})"]["table write"]["actions"]) == ["dynamodb:PutItem"]
    # The writer's only read: the key and version attributes, before its conditional write.
    writer_read = roles[f"writer role ({region})"]["table read"]["actions"]
    assert list(writer_read) == ["dynamodb:GetItem"]
    assert writer_read["dynamodb:GetItem"]["requires"] == [
        "dynamodb:Attributes ForAllValues:StringEquals id | _version",
        "dynamodb:Select StringEqualsIfExists SPECIFIC_ATTRIBUTES",
    ]
    assert list(roles[f"reader role ({region})"]["table read"]["actions"]) == ["dynamodb:GetItem"]
    assert roles[f"reader role ({region})"]["table write"]["verdict"] == "deny"
    others = [cells for label, cells in roles.items() if not label.endswith(f"({region})")]
    assert others and all(c["verdict"] == "deny" for cells in others for c in cells.values())


def test_replica_regions_and_replication_scope_are_reported(review: dict[str, Any]) -> None:
    primary = review["regions"][0]
    (mrk,) = [k for k in primary["keys"] if k["kind"] == "multi-region key (primary)"]
    (replicate,) = [s for s in mrk["statements"] if "kms:ReplicateKey" in s.get("actions", [])]
    assert replicate["conditions"] == ["kms:ReplicaRegion StringEquals us-west-1"]
    (table,) = review["regions"][1]["tables"]
    assert (table["sse_key_label"], table["sse_key_region"]) == ("alias/mrk-toolkit/records-table", "us-west-1")
    assert table["point_in_time_recovery"] and table["deletion_protection"]


def test_output_is_deterministic_and_account_free(cdk_out: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["--cdk-out", str(cdk_out), "--out", str(tmp_path / name)]) == 0
    for file in ("policy-review.md", "policy-review.json"):
        first, second = (tmp_path / "a" / file).read_text(), (tmp_path / "b" / file).read_text()
        assert first == second
        assert ACCOUNT not in first and str(cdk_out) not in first and "/tmp" not in first
        assert not re.search(r"[0-9a-f]{64}", first), "asset hash in the review"
        assert "<account>" in first
    review = json.loads((tmp_path / "a" / "policy-review.json").read_text())
    assert render_markdown(review) == (tmp_path / "a" / "policy-review.md").read_text()


def test_mermaid_diagram_is_drawn_from_the_assembly(cdk_out: Path, review: dict[str, Any]) -> None:
    diagram = mermaid(load_assembly(cdk_out))
    assert diagram == review["mermaid"]
    assert diagram.startswith("flowchart LR\n")
    assert 'subgraph region_us_east_2["us-east-2 (primary)"]' in diagram
    assert 'subgraph region_us_west_1["us-west-1"]' in diagram
    for stack in ("MrkToolkit-Keys-us-west-1", "MrkToolkit-Table", "MrkToolkit-Functions-us-east-2"):
        assert f'["{stack}"]' in diagram
    edges = [line.strip() for line in diagram.splitlines() if "-->" in line or ".->" in line]
    assert "fn_us_west_1_Records_Writer_Function -->|kms:GenerateDataKey| key_us_west_1_RecordsKey_Key" in edges
    assert "fn_us_west_1_Records_Reader_Function -->|kms:Decrypt| key_us_west_1_RecordsKey_Key" in edges
    assert "key_us_west_1_RecordsKey_Key -. replica of .-> key_us_east_2_RecordsKey_Key" in edges
    assert "table_us_west_1_mrk_toolkit_records -->|SSE| key_us_west_1_TableKey_Key" in edges
    # The writer's read is limited to the key and the version: the diagram says so.
    writer_table = "fn_us_west_1_Records_Writer_Function -->|dynamodb:GetItem of id/_version, dynamodb:PutItem|"
    assert f"{writer_table} table_us_west_1_mrk_toolkit_records" in edges
    assert "fn_us_west_1_Records_Reader_Function -->|dynamodb:GetItem| table_us_west_1_mrk_toolkit_records" in edges


def test_readme_block_is_rewritten_between_the_markers_only(cdk_out: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nBefore.\n\n{START}\nold diagram\n{END}\n\nAfter.\n")
    args = ["readme", str(readme), "--cdk-out", str(cdk_out)]
    assert main([*args, "--check"]) == 1  # stale
    assert "old diagram" in readme.read_text()
    assert main(args) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nBefore.\n\n") and text.endswith(f"{END}\n\nAfter.\n")
    assert "```mermaid\nflowchart LR\n" in text
    assert main([*args, "--check"]) == 0
    assert with_diagram(text, mermaid(load_assembly(cdk_out))) == text


def test_readme_without_markers_is_refused(cdk_out: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# No markers\n")
    with pytest.raises(MarkersMissing, match="architecture:start"):
        refresh(readme, "flowchart LR\n")
    assert main(["readme", str(readme), "--cdk-out", str(cdk_out)]) == 2
    assert readme.read_text() == "# No markers\n"


def test_review_lists_each_regions_alarms_with_metric_threshold_and_encrypted_topic(review: dict[str, Any]) -> None:
    for region in review["regions"]:
        name = region["region"]
        other = next(r for r in REGIONS if r != name)
        alarms = {a["name"]: a for a in region["alarms"]}
        assert sorted(alarms) == sorted(
            f"MrkToolkit-{name}-{what}"
            for what in (
                *(f"{kind}-{signal}" for kind in ("writer", "reader") for signal in ("errors", "throttles")),
                *(
                    f"{kind}-{signal}"
                    for kind in ("writer", "reader")
                    for signal in ("security-refusals", "kms-throttles")
                ),
                f"replication-latency-to-{other}",
                f"pending-replication-to-{other}",
                "denied-key-calls",
            )
        )
        security = alarms[f"MrkToolkit-{name}-reader-security-refusals"]
        assert security["metric"] == "MrkToolkit SecurityRefusals (Operation=read, Table=mrk-toolkit-records)"
        assert security["threshold"].startswith("Sum >= 1 in 1 of 1 periods of 60 s; missing data notBreaching")
        errors = alarms[f"MrkToolkit-{name}-writer-errors"]
        assert errors["metric"] == f"AWS/Lambda Errors (FunctionName=writer function ({name}))"
        latency = alarms[f"MrkToolkit-{name}-replication-latency-to-{other}"]
        assert f"ReceivingRegion={other}" in latency["metric"], latency
        for alarm in alarms.values():
            (action,) = alarm["actions"]
            assert action.startswith(f"SNS topic MrkToolkit-alarms ({name}, encrypted with the alarm topic key"), action
    markdown = render_markdown(review)
    assert markdown.count("### Alarms") == len(REGIONS)
    assert markdown.count("### Audit rules") == len(REGIONS)
    assert "| `MrkToolkit-us-west-1-reader-security-refusals` | MrkToolkit SecurityRefusals" in markdown


def test_review_lists_each_regions_audit_rules_and_what_they_watch(review: dict[str, Any]) -> None:
    for region in review["regions"]:
        name = region["region"]
        rules = {r["name"]: r for r in region["audit_rules"]}
        trail = ["audit-trail-changes"] if region["primary"] else []  # the trail's home region
        assert sorted(rules) == sorted(
            f"MrkToolkit-{name}-{what}"
            for what in ("key-administration", "unexpected-key-use", "denied-key-calls", *trail)
        )
        mrk = "multi-region key (primary)" if region["primary"] else "multi-region key (replica)"
        for what in ("key-administration", "unexpected-key-use", "denied-key-calls"):
            assert f"on the {mrk}" in rules[f"MrkToolkit-{name}-{what}"]["pattern"], what
        use = rules[f"MrkToolkit-{name}-unexpected-key-use"]
        assert use["read_only_events"] is True and "by anyone but the function roles" in use["pattern"]
        assert use["watches"].startswith("any use of the region's records key other than GenerateDataKey")
        (target,) = use["targets"]
        assert target.startswith(f"SNS topic MrkToolkit-alarms ({name}, encrypted with the alarm topic key")
        assert rules[f"MrkToolkit-{name}-denied-key-calls"]["targets"] == []
    assert "| `MrkToolkit-us-west-1-unexpected-key-use` | any use of the region's records key" in render_markdown(
        review
    )
