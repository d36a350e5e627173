"""``python -m benchmarks [--quick]``: run every benchmark. Only the full run with the default options
writes the committed benchmarks/RESULTS.md; a quick or otherwise non-default run writes
review-out/benchmarks.md (or --output, which must not be a committed file)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import aurora, coldstart, crypto, integrity, load, machine, report, synth
from cli_support import Parser, UsageError, add_debug, is_committed, non_negative_seconds, positive_int, run

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COMMITTED = HERE / "RESULTS.md"
SCRATCH = REPO / "review-out" / "benchmarks.md"


def _parser() -> Parser:
    parser = Parser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer runs, 5 s of load (about 2 minutes)")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the results (default: {COMMITTED.relative_to(REPO)} for the full default run, "
        f"else {SCRATCH.relative_to(REPO)})",
    )
    parser.add_argument(
        "--kms-latency-ms",
        type=non_negative_seconds(1000, "ms"),
        default=5.0,
        help="modelled in-region KMS latency per call for the extra table of section 1 (0: skip)",
    )
    parser.add_argument(
        "--load-seconds",
        type=non_negative_seconds(3600),
        help="seconds of load per configuration (default 20, quick 5)",
    )
    parser.add_argument("--writers", type=positive_int, default=4)
    parser.add_argument("--readers", type=positive_int, default=4)
    add_debug(parser)
    return parser


def output_path(args: argparse.Namespace) -> Path:
    """RESULTS.md is written only by the full run with default options; anything else goes elsewhere."""
    defaults = vars(_parser().parse_args([]))
    changed = [k for k, v in vars(args).items() if k not in ("output", "debug") and v != defaults[k]]
    if args.output is None:
        return SCRATCH if changed else COMMITTED
    if changed and (args.output.resolve() == COMMITTED or is_committed(args.output)):
        options = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise UsageError(
            f"--output {args.output} is a committed file and this is not the full default run ({options}): "
            f"write a quick or non-default run elsewhere (default {SCRATCH.relative_to(REPO)})"
        )
    if not args.output.parent.is_dir():
        raise UsageError(f"--output {args.output}: folder {args.output.parent} does not exist; create it first")
    return args.output


def _check_prerequisites() -> None:
    if not (REPO / "node_modules" / ".bin" / "cdk").exists():
        raise UsageError("the pinned CDK CLI is not installed (node_modules/.bin/cdk): run `make setup` first")


def main(argv: list[str] | None = None) -> int:
    """The command; an expected error is one line on stderr and exit code 2."""
    return run(_main, argv)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _measure(args: argparse.Namespace, command: str) -> report.Run:
    """Every section in turn, progress on stderr; the run's results."""
    started = time.perf_counter()
    _say("1-2. per-record crypto and KMS calls (moto, in-process) ...")
    crypto_results = crypto.run(crypto.Plan.make(quick=args.quick, latency_ms=args.kms_latency_ms), _say)
    _say(f"     {crypto_results.seconds:.0f} s")
    _say("6. record integrity (format 2) ...")
    integrity_results = integrity.run(records=10 if args.quick else 40, repeats=3 if args.quick else 7, say=_say)
    _say(f"     {integrity_results.seconds:.0f} s")
    _say("3. cold start ...")
    cold = coldstart.run(runs=3 if args.quick else 9, say=_say)
    _say(f"     {cold.seconds:.0f} s")
    _say("5. throughput under load (moto server) ...")
    seconds = args.load_seconds or (5.0 if args.quick else 20.0)
    load_results = load.run(seconds=seconds, writers=args.writers, readers=args.readers, say=_say)
    _say(f"     {load_results.seconds:.0f} s")
    _say("4. synth scale (cdk synth) ...")
    synth_results = synth.run(repeats=1 if args.quick else 5, warm_up=not args.quick, say=_say)
    _say(f"     {synth_results.seconds:.0f} s")
    _say("7. Aurora PostgreSQL store: per record vs DynamoDB, replication lag, failover (real PostgreSQL) ...")
    aurora_records = 40 if args.quick else 200
    aurora_started = time.perf_counter()
    aurora_figures = aurora.run(aurora_records)
    aurora_seconds = time.perf_counter() - aurora_started
    _say(f"     {aurora_seconds:.0f} s")

    return report.Run(
        command=command,
        quick=args.quick,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        total_seconds=time.perf_counter() - started,
        machine=machine.describe(),
        versions=machine.versions(),
        cli_version=synth_results.cli_version,
        crypto=crypto_results,
        cold=cold,
        synth=synth_results,
        load=load_results,
        integrity=integrity_results,
        aurora=aurora_figures,
        aurora_records=aurora_records,
        aurora_seconds=aurora_seconds,
    )


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    args.output = output_path(args)
    _check_prerequisites()
    command = shlex.join(["python", "-m", "benchmarks", *argv])
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    _say(f"$ {command}")
    result = _measure(args, command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report.render(result))
    _say(f"wrote {args.output} ({result.total_seconds:.0f} s)")
    missed = [t for t in report.targets(result) if not t.met]
    for t in missed:
        _say(f"target missed: {t.name}: {t.measured} ({t.gap})")
    # A missed performance target is reported, not fatal; a lost or undecryptable record is a bug.
    return 1 if any(t.name.startswith("zero lost") for t in missed) else 0


if __name__ == "__main__":
    sys.exit(main())
