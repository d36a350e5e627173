"""The finder in the main job (offline/verification/beacons.py) on the emulator, and `verify` against the
emulated deployment: with beacon fields configured, the record written in the primary is found in every
region, a fresh value finds nothing, the 8-bit field's false positives are dropped, a planted beacon is
refused, and the finder's role may neither write nor decrypt outside the record context; an edited finder
role that may write the table fails the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from offline.__main__ import main
from offline.verification.emulated import run_offline
from stacks.synthesize import synthesize
from tests.offline.edits import edited, failures, resources, run
from tests.offline.test_beacons_end_to_end import AURORA_CONTEXT, CONTEXT, PRIMARY, REPLICAS
from tests.offline.test_verify_served import _tables, served  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e
REGIONS = (PRIMARY, *REPLICAS)
FINDS = [
    f"beacons: a record written in {PRIMARY} is found by ssn, date_of_birth from every region",
    "beacons: a value never written finds nothing in every region",
    "beacons: the 8-bit beacon's false positives are decrypted and dropped",
    f"beacons: a beacon planted by a table writer in {REPLICAS[0]} is refused, not returned",
    *(f"beacons: the finder's role in {r} may only decrypt records and compute beacons" for r in REGIONS),
]


@pytest.fixture(scope="module")
def beacon_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(synthesize(dict(CONTEXT), str(tmp_path_factory.mktemp("beacons") / "cdk.out")))


def test_the_main_job_finds_in_every_region(beacon_assembly: Path, tmp_path: Path) -> None:
    report = run(beacon_assembly, tmp_path)
    assert report.ok, report.render()
    passed = {c.name for c in report.checks if c.ok}
    assert set(FINDS) <= passed, sorted(set(FINDS) - passed)


def test_a_finder_role_that_may_write_fails_the_run(beacon_assembly: Path, tmp_path: Path) -> None:
    """The finder's role given PutItem (a hand-edited template in us-west-1): its check fails, there only."""

    def may_write(template: dict[str, Any]) -> None:
        (policy,) = resources(template, "AWS::IAM::ManagedPolicy", "RecordsFinderAccess")
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        statements.append({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"})

    broken = edited(beacon_assembly, tmp_path / "edited", {f"MrkToolkit-Functions-{REPLICAS[0]}": may_write})
    failed = failures(run(broken, tmp_path))
    name = f"beacons: the finder's role in {REPLICAS[0]} may only decrypt records and compute beacons"
    assert name in failed and "dynamodb:PutItem" in failed[name], failed
    assert f"beacons: the finder's role in {PRIMARY} may only decrypt records and compute beacons" not in failed


def test_verify_runs_the_finder_checks_and_leaves_the_tables_as_they_were(
    served: Any,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = served(Path(synthesize(dict(CONTEXT), str(tmp_path / "cdk.out"))))
    before = _tables(env)
    code = main(["verify", "--deadline", "10", *(f"-c{k}={v}" for k, v in CONTEXT.items())])
    out = capsys.readouterr().out
    assert code == 0, "\n".join(line for line in out.splitlines() if line.startswith("FAIL"))
    lines = {line.split("  ")[1].strip(): line[:4] for line in out.splitlines() if line[:4] in ("PASS", "N/A ", "FAIL")}
    assert all(lines.get(name) == "PASS" for name in FINDS), out
    assert _tables(env) == before, "verify left the tables changed"


def test_the_aurora_main_job_finds_in_every_region(tmp_path: Path) -> None:
    """The Aurora store: found in every region, nothing for a fresh value, the finder's KMS rights (the
    false-positive and planted-beacon checks read and alter DynamoDB items: not on this store)."""
    report = run_offline(
        context_overrides=dict(AURORA_CONTEXT), lag_seconds=0.3, progress=lambda _line: None, log_dir=tmp_path
    )
    assert report.ok, report.render()
    passed = {c.name for c in report.checks if c.ok}
    assert {FINDS[0], FINDS[1], *FINDS[4:]} <= passed, sorted({FINDS[0], FINDS[1], *FINDS[4:]} - passed)
