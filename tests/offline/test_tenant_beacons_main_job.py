"""Tenants with beacons (issue 21) in the main job on the emulator (offline/verification/beacons.py
``tenant_beacon_checks``), with the three tenants of tests/offline/test_tenants_end_to_end.py: each tenant's
record found by each beacon field in each of its regions, a fresh value finding nothing; where two tenants
share a region, equal values stored with different beacons and each finding its own record only; a beacon
copied from one tenant's record onto another's never returned (the other's reader: TamperedRecord); the
finder's tenant sessions decrypting their own tenant's data keys only; the audit accepting the finder's
tenant sessions' decrypts and nothing else of them. A finder's tenant-access role hand-edited to drop its
tenant conditions fails its region's session check, and only there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambda_src.record_crypto.settings import STORE_AURORA_POSTGRESQL
from offline.verification.checks import Report
from offline.verification.emulated import run_offline
from stacks.synthesize import synthesize
from tests.offline.edits import edited, failures, resources, run
from tests.offline.test_beacons_end_to_end import BEACONS
from tests.offline.test_tenants_end_to_end import PRIMARY, REPLICAS, TENANTS

pytestmark = pytest.mark.e2e
CONTEXT = {
    "mrk-toolkit:replicaRegions": ",".join(REPLICAS),
    "mrk-toolkit:tenants": json.dumps(TENANTS),
    "mrk-toolkit:beaconFields": json.dumps(BEACONS),
}
REGIONS = (PRIMARY, *REPLICAS)
FIELDS = ", ".join(BEACONS)
# Which tenants' keys each region holds (the config's regions; acme's are every region).
HELD = {"us-east-2": ["acme", "initech"], "us-west-1": ["acme", "globex"], "eu-west-1": ["acme", "initech"]}


def sessions(region: str) -> str:
    return f"beacons: the finder's tenant sessions in {region} decrypt their own tenant's records only"


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(synthesize(dict(CONTEXT), str(tmp_path_factory.mktemp("tenant-beacons") / "cdk.out")))


@pytest.fixture(scope="module")
def report(assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> Report:
    return run(assembly, tmp_path_factory.mktemp("tenant-beacons-run"))


def test_the_main_job_runs_the_lookup_per_tenant_in_every_region(report: Report) -> None:
    assert report.ok, report.render()
    details = {c.name: c.detail for c in report.checks}
    for tenant in TENANTS:
        found = f"beacons: a record is found by {FIELDS} in each of its tenant's regions (tenant {tenant})"
        regions = TENANTS[tenant].get("regions", REGIONS)  # type: ignore[attr-defined]
        assert all(r in details[found] for r in regions), details[found]
        assert f"beacons: a value never written finds nothing (tenant {tenant})" in details
    apart = next(n for n in details if n.startswith("beacons: equal values of two tenants are stored"))
    assert "stored beacons differ" in details[apart]
    for region, (tenant, other) in {r: tuple(h) for r, h in HELD.items()}.items():
        assert f"{tenant} and {other} in {region}" in details[apart], details[apart]
    copied = next(n for n in details if n.startswith("beacons: a beacon copied from one tenant's record"))
    assert "returned" in details[copied] and "TamperedRecord" in details[copied], details[copied]
    for region, held in HELD.items():
        assert details[sessions(region)].startswith(f"{', '.join(held)}: each session decrypts its own"), region
        assert "another tenant's refused" in details[sessions(region)]
    audit = [n for n in details if n.startswith("audit: in ") and "tenant key was its tenant's" in n]
    assert len(audit) == len(REGIONS), audit


def test_a_finder_tenant_role_without_its_tenant_conditions_fails_the_run(assembly: Path, tmp_path: Path) -> None:
    """The finder's tenant-access role in us-west-1 may use any tenant key with any context: one tenant's
    finder session decrypts the other's data keys there; the session check fails there only."""

    def unbound(template: dict[str, Any]) -> None:
        (policy,) = resources(template, "AWS::IAM::ManagedPolicy", "RecordsFinderTenantAccessPolicy")
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            statement.pop("Condition", None)

    broken = edited(assembly, tmp_path / "edited", {f"MrkToolkit-Functions-{REPLICAS[0]}": unbound})
    failed = failures(run(broken, tmp_path))
    assert sessions(REPLICAS[0]) in failed and "decrypted" in failed[sessions(REPLICAS[0])], failed
    assert sessions(PRIMARY) not in failed


def test_the_aurora_main_job_with_tenants_and_beacons(tmp_path: Path) -> None:
    """The Aurora store, the same tenants (globex, in us-west-1 only, written there through the global
    writer endpoint): each tenant found in each of its regions through the finder's tenant sessions,
    tenants apart where they share a region (the copied beacon alters DynamoDB items: not on this store)."""
    tenants = TENANTS
    context = {**CONTEXT, "mrk-toolkit:store": STORE_AURORA_POSTGRESQL}
    report = run_offline(context_overrides=context, lag_seconds=0.3, progress=lambda _line: None, log_dir=tmp_path)
    assert report.ok, report.render()
    passed = {c.name for c in report.checks if c.ok}
    for tenant in tenants:
        assert f"beacons: a record is found by {FIELDS} in each of its tenant's regions (tenant {tenant})" in passed
    assert any(n.startswith("beacons: equal values of two tenants are stored") for n in passed), sorted(passed)
    assert all(sessions(r) in passed for r in REGIONS)
