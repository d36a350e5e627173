"""Section 7 of RESULTS.md: the Aurora figures of the same run, rendered from what benchmarks.aurora measured."""

from __future__ import annotations

from types import SimpleNamespace

from benchmarks import aurora, report


def _figures() -> dict[str, object]:
    times = {"median": 20.0, "p95": 40.0, "max": 90.0}
    drill = dict(old_primary="us-east-2", new_primary="us-west-1", catch_up_seconds=0.02)
    return {
        "postgres": {"write": times, "read": {**times, "median": 10.0}, "lag": {"median": 2.0, "p95": 5.0, "max": 9.0}},
        "dynamodb": {"write": {**times, "median": 40.0}, "read": times},
        "planned": SimpleNamespace(
            name="planned switchover",
            acknowledged=50,
            lost=0,
            seconds_to_first_write=1.5,
            promotion_to_first_write=0.125,
            follow={"acknowledged": 3, "refused ReadOnlyRegion": 4},
            **drill,
        ),
        "unplanned": SimpleNamespace(
            name="unplanned failover", acknowledged=21, lost=1, seconds_to_first_write=3.25, **drill
        ),
    }


def test_section_7_gives_the_ratios_the_lag_and_each_drills_losses_and_seconds() -> None:
    run = SimpleNamespace(aurora=_figures(), aurora_records=200, aurora_seconds=80.0)
    text = "\n".join(report.aurora_section(run))  # type: ignore[arg-type]
    assert text.startswith("## 7. Aurora PostgreSQL store")
    assert "| write | 20.00 / 40.00 / 90.00 | 40.00 / 40.00 / 90.00 | 0.50x |" in text
    assert "| read | 10.00 / 40.00 / 90.00 | 20.00 / 40.00 / 90.00 | 0.50x |" in text
    assert "median 2.00 ms, p95 5.00 ms, max 9.00 ms over 200 writes" in text
    assert "| planned switchover | us-east-2 -> us-west-1 | 50 | 0 | 1.50 | 0.125 | acknowledged 3, refused" in text
    assert "| unplanned failover | us-east-2 -> us-west-1 | 21 | 1 | 3.25 | n/a | n/a |" in text
    assert "### Failover" in text and "\n## Per record" not in text  # nested under section 7


def test_no_aurora_figures_no_section() -> None:
    assert report.aurora_section(SimpleNamespace(aurora=None)) == []  # type: ignore[arg-type]


def test_the_standalone_run_never_writes_a_committed_file() -> None:
    assert aurora.OUTPUT.parent.name == "review-out"


def test_section_7_gives_the_rotation_under_load_when_measured() -> None:
    figures = _figures()
    rotation = {
        "acknowledged": 52,
        "refused": {"DatabaseUnavailable (retryable)": 1},
        "lost": 0,
        "longest_pause_ms": 58.2,
        "first_ack_after_change_ms": 42.4,
        "rotation_seconds": 0.3,
    }
    run = SimpleNamespace(aurora={**figures, "rotation": rotation}, aurora_records=200, aurora_seconds=80.0)
    text = "\n".join(report.aurora_section(run))  # type: ignore[arg-type]
    assert "### The writer's database password rotated under write load" in text
    assert "| 52 | 1 DatabaseUnavailable (retryable) | 0 | 58.2 | 0.30 | 42.4 |" in text
    without = "\n".join(report.aurora_section(SimpleNamespace(aurora=figures, aurora_records=200, aurora_seconds=8.0)))  # type: ignore[arg-type]
    assert "rotated under write load" not in without  # a run from before the drill renders as it did


def test_section_7_gives_every_regions_writer_promotion_to_first_write() -> None:
    figures = _figures()
    planned = figures["planned"]
    planned.promotion_to_first_write_by_region = {"us-west-1": 0.125, "eu-west-1": 0.25}  # type: ignore[attr-defined]
    planned.follow_by_region = {  # type: ignore[attr-defined]
        "us-west-1": {"acknowledged": 3, "refused DatabaseUnavailable": 4},
        "eu-west-1": {"acknowledged": 3, "refused DatabaseUnavailable": 6},
    }
    text = "\n".join(report.aurora_section(SimpleNamespace(aurora=figures, aurora_records=200, aurora_seconds=80.0)))  # type: ignore[arg-type]
    assert (
        "| planned switchover | us-west-1 (new primary) | 0.125 | acknowledged 3, refused DatabaseUnavailable 4 |"
        in text
    )
    assert "| planned switchover | eu-west-1 | 0.250 | acknowledged 3, refused DatabaseUnavailable 6 |" in text
