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
