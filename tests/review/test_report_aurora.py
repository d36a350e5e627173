"""The policy review of an Aurora deployment (default regions): the storage keys of every region, who may
read which secret in which region, and the clusters, as the design promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.reader import load_assembly
from review.report import build_review, render_markdown
from stacks.synthesize import synthesize
from tests.review.test_report import who

ACCOUNT = "111122223333"
REGIONS = ["us-east-2", "us-west-1"]


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("review-aurora-cdk-out")
    synthesize(
        {
            "mrk-toolkit:account": ACCOUNT,
            "mrk-toolkit:store": "aurora-postgresql",
            "mrk-toolkit:replicaRegions": REGIONS[1:],
        },
        str(out),
    )
    return build_review(load_assembly(Path(out)))


def _region(review: dict[str, Any], region: str) -> dict[str, Any]:
    (entry,) = [r for r in review["regions"] if r["region"] == region]
    return entry


@pytest.mark.parametrize("region", REGIONS)
def test_each_region_has_its_own_storage_key_encrypting_its_own_cluster(review: dict[str, Any], region: str) -> None:
    entry = _region(review, region)
    storage = [k for k in entry["keys"] if k["kind"] == "cluster storage key"]
    assert len(storage) == 1
    role = "primary" if region == REGIONS[0] else "secondary"
    assert storage[0]["encrypts"] == [f"{role} cluster ({region})"]
    (cluster,) = entry["clusters"]
    assert cluster["storage_key_region"] == region and cluster["storage_key_label"] == storage[0]["label"]
    assert cluster["deletion_protection"] is True and cluster["storage_encrypted"] is True
    assert cluster["global_cluster"] == "mrktoolkit-records"
    # Only RDS, through kms:ViaService in this region, may use it; no application role may.
    (block,) = [b for b in entry["matrix"] if b["resource_kind"] == "cluster storage key"]
    assert who(block, "Decrypt", "allow") == [
        f"RDS on the account's behalf (kms:ViaService rds.{region}.amazonaws.com)"
    ]
    assert not [p for p in who(block, "Decrypt", "allow") + who(block, "GenerateDataKey", "allow") if "role" in p]


@pytest.mark.parametrize("region", REGIONS)
def test_each_function_reads_only_its_own_secret_in_its_own_region(review: dict[str, Any], region: str) -> None:
    entry = _region(review, region)
    secrets = {s["label"].split(" ")[1]: s for s in entry["secrets"]}
    expected = {"MrkToolkit/aurora/records_writer", "MrkToolkit/aurora/records_reader"}
    if region == REGIONS[0]:
        expected.add("MrkToolkit/aurora/records_admin")
    assert set(secrets) == expected
    setup = "role MrkToolkit-Database-us-east-2/SchemaSetupRole"
    rotation = "role MrkToolkit-Database-us-east-2/SecretRotation/Role"  # README "Secret rotation"
    primary_only = [setup, rotation] if region == REGIONS[0] else []
    for kind in ("writer", "reader"):
        secret = secrets[f"MrkToolkit/aurora/records_{kind}"]
        assert secret["kms_key_region"] == region
        readers = [f"{kind} role ({region})", *primary_only]
        assert sorted(secret["readable_by"]) == sorted(readers)
        (block,) = [b for b in entry["matrix"] if b["resource"] == secret["label"]]
        # Only the rotation function's role changes a secret (in the primary: a replica follows it),
        # and the account root user, as for every resource.
        changers = who(block, "secret change / delete", "allow")
        assert sorted(changers) == sorted(["account root user", *primary_only[1:]]), changers
    if region == REGIONS[0]:
        assert sorted(secrets["MrkToolkit/aurora/records_admin"]["readable_by"]) == sorted([setup, rotation])


def test_the_markdown_shows_clusters_and_secrets(review: dict[str, Any]) -> None:
    text = render_markdown(review)
    assert text.count("### Aurora clusters") == 2 and text.count("### Secrets") == 2
    assert "secondary cluster (us-west-1)" in text
    assert ACCOUNT not in text and ACCOUNT not in json.dumps(review)


def test_only_the_aurora_stores_sections_and_reading_key(review: dict[str, Any]) -> None:
    markdown = render_markdown(review)
    assert "### Table replicas" not in markdown and "NEW_AND_OLD_IMAGES" not in markdown
    terms = [row[0] for row in review["reading_key"]]
    assert "secret columns" in terms and "table columns" not in terms
    assert markdown.index("## Findings") < markdown.index("## Deployment")
