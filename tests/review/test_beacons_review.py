"""The policy review with beacon fields (issue 21): per field and region, who may compute beacons (the
region's writer and finder) and who may find records by the field (the region's finder alone), decided by
the policy engine; a finder role edited to lose its index Query no longer finds there; without beacon
fields the review has no beacons section; with tenants the finder finds each tenant in that tenant's session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cloud_assembly.reader import load_assembly
from review.report import build_review, render_markdown
from stacks.synthesize import synthesize
from tests.offline.test_beacons_end_to_end import BEACONS, CONTEXT, PRIMARY, REPLICAS
from tests.offline.test_tenant_beacons_main_job import CONTEXT as TENANT_CONTEXT
from tests.offline.test_tenant_beacons_main_job import HELD

FINDER, WRITER = (
    "the finder's role ({r}) MrkToolkit-Functions-{r}/RecordsFinderRole",
    "the writer's role ({r}) MrkToolkit-Functions-{r}/RecordsWriterRole",
)


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(synthesize(dict(CONTEXT), str(tmp_path_factory.mktemp("beacons") / "cdk.out")))


def test_each_field_and_region_names_who_computes_and_who_finds(cdk_out: Path) -> None:
    review = build_review(load_assembly(cdk_out))
    entries = {(e["field"], e["region"]): e for e in review["beacons"]}
    assert set(entries) == {(f, r) for f in BEACONS for r in (PRIMARY, *REPLICAS)}
    for (field, region), e in entries.items():
        assert e["find"] == [FINDER.format(r=region)], (field, region, e)
        assert e["compute"] == sorted([FINDER.format(r=region), WRITER.format(r=region)]), (field, region, e)
    markdown = render_markdown(review)
    assert "### Beacons: who can compute beacons and find records, per field and region" in markdown
    assert f"beacon ssn {REPLICAS[0]}: {FINDER.format(r=REPLICAS[0])} may find" in review["facts"]


def test_a_finder_without_its_index_query_finds_nowhere_there(cdk_out: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(cdk_out, edited)
    path = edited / f"MrkToolkit-Functions-{REPLICAS[0]}.template.json"
    template = json.loads(path.read_text())
    for res in template["Resources"].values():
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            doc = res["Properties"]["PolicyDocument"]
            doc["Statement"] = [s for s in doc["Statement"] if "dynamodb:Query" not in json.dumps(s.get("Action"))]
    path.write_text(json.dumps(template))
    entries = {(e["field"], e["region"]): e for e in build_review(load_assembly(edited))["beacons"]}
    assert entries[("ssn", REPLICAS[0])]["find"] == []
    assert entries[("ssn", PRIMARY)]["find"] == [FINDER.format(r=PRIMARY)]


def test_no_beacons_section_without_beacon_fields(tmp_path: Path) -> None:
    review = build_review(load_assembly(synthesize({}, str(tmp_path / "cdk.out"))))
    assert "beacons" not in review and "### Beacons" not in render_markdown(review)


def test_with_tenants_the_finder_finds_each_regions_tenants_in_their_sessions_only(tmp_path: Path) -> None:
    """Tenants with beacons: nobody decrypts with the records key; the finder's role finds through its
    tenant-access role's sessions, each tenant's records with that tenant's key only (no crossing listed)."""
    review = build_review(load_assembly(synthesize(dict(TENANT_CONTEXT), str(tmp_path / "cdk.out"))))
    entries = {(e["field"], e["region"]): e for e in review["beacons"]}
    assert set(entries) == {(f, r) for f in BEACONS for r in HELD}
    for (field, region), e in entries.items():
        tenants = ", ".join(HELD[region])
        assert e["find"] == [f"{FINDER.format(r=region)}, in a tenant's session: {tenants}"], (field, region, e)
        assert e["compute"] == sorted([FINDER.format(r=region), WRITER.format(r=region)])
