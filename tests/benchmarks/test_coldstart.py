"""The import-time target is judged on the handler modules Lambda imports (writer.py, reader.py)."""

from __future__ import annotations

from benchmarks import coldstart
from benchmarks.report import import_target


def results(**medians: float) -> coldstart.ColdStartResults:
    return coldstart.ColdStartResults(runs=1, import_ms={m: [v] for m, v in medians.items()})


def test_target_is_measured_on_the_slower_handler_module() -> None:
    cold = results(boto3=100, writer=250, reader=180, **{coldstart.SERVICE: 150, "aws_encryption_sdk": 140})
    target = import_target(cold)
    assert not target.met
    assert target.measured.startswith("2.50x (writer 2.50x, reader 1.80x")
    assert "record_crypto.service` alone is 1.50x" in target.gap


def test_handlers_are_what_lambda_imports() -> None:
    assert coldstart.HANDLERS == ("writer", "reader")
    timed = [module for module, _ in coldstart.IMPORTS]
    assert set(coldstart.HANDLERS) <= set(timed) and set(coldstart.HANDLERS) <= set(coldstart.NO_PYC_IMPORTS)
    cold = results(boto3=100, writer=150, reader=190, **{coldstart.SERVICE: 120, "aws_encryption_sdk": 110})
    assert import_target(cold).met and "reader 190.0 vs 100.0 ms" in import_target(cold).measured


def first(**ms_by_variant: tuple[float, float]) -> coldstart.FirstRecordResults:
    """(write ms, read ms) per variant: wall and CPU alike, 50 MB each."""
    results = coldstart.FirstRecordResults(runs=1)
    for variant, pair in ms_by_variant.items():
        for operation, value in zip(coldstart.OPERATIONS, pair, strict=True):
            results.ms[(variant, operation)] = [value]
            results.cpu_ms[(variant, operation)] = [value]
            results.exit_ms[(variant, operation)] = [value + 100]
            results.peak_mb[(variant, operation)] = [50.0]
    return results


def test_first_record_target_is_judged_per_operation_against_the_bare_script() -> None:
    from benchmarks.report import first_record_targets

    run = first(**{coldstart.BARE: (800, 600), coldstart.BARE_PYC: (600, 500), coldstart.OURS: (400, 360)})
    write, read = first_record_targets(run)
    assert write.met and write.measured.startswith("0.50x wall") and "(400 vs 800 ms)" in write.measured
    assert not read.met and "over by 0.10x" in read.gap and "bytecode for all it imports is 0.83x" in read.gap
    assert first_record_targets(None) == []
    rows = coldstart.first_record_table(run)
    assert len(rows) == 2 + len(coldstart.VARIANTS) * len(coldstart.OPERATIONS)
    assert "| toolkit | read | 360 | 360-360 | 0.60x | 360 | 0.60x | 460 | 0.66x | 50.0 |" in rows


def test_the_stage_table_shows_each_stage_median_and_the_report_explains_them() -> None:
    run = first(**{coldstart.BARE: (800, 600), coldstart.BARE_PYC: (600, 500), coldstart.OURS: (400, 360)})
    assert coldstart.stages_table(run)[2:] == [], "no staged runs: no rows"
    parts = len(coldstart.STAGES)
    run.stages[(coldstart.OURS, "write")] = [[10.0] * parts, [30.0] * parts, [20.0] * parts]
    rows = coldstart.stages_table(run)
    assert (
        rows[0].count("|") == parts + 4
        and rows[2] == "| toolkit | write | " + " | ".join(["20"] * parts) + f" | {20 * parts} |"
    )
    text = coldstart.first_record_report(run, when="now", seconds=1.0)
    assert "## Where the time goes" in text and rows[2] in text
    assert "## Where the time goes" not in coldstart.first_record_report(
        first(**{coldstart.BARE: (8, 6), coldstart.BARE_PYC: (6, 5), coldstart.OURS: (4, 3)}), when="now", seconds=1.0
    )


def test_a_cold_start_is_timed_to_the_answer_and_to_the_exit(tmp_path) -> None:
    """The judged figure ends at the handler's answer; the teardown after it is in the exit figure only."""
    import sys

    (tmp_path / "slow_exit.py").write_text(
        "import atexit, time\n"
        "atexit.register(time.sleep, 0.3)  # a teardown no caller waits for\n"
        "def handler(event, context):\n"
        "    return {'ok': True}\n"
    )
    answer, cpu, ended, peak = coldstart._spawn(sys.executable, tmp_path, tmp_path, {}, ("slow_exit", "handler"), {})
    assert 0 < answer < ended and ended - answer >= 300
    assert 0 < cpu < ended and peak > 1
