"""Command line of the policy review.

python -m review [--cdk-out cdk.out] [--out review-out] [-c key=value ...]
    write policy-review.md and policy-review.json (synthesizes cdk.json's deployment in-process,
    with the -c overrides, when --cdk-out is not given)
python -m review readme README.md [--check] [--cdk-out cdk.out] [-c key=value ...]
    rewrite the README's generated blocks: the architecture diagram and the table of what each role
    may do, between their markers (--check: exit 1 if either is stale); a
    committed file gets only cdk.json's default deployment (no -c, an assembly of its regions)
Add --debug to see the traceback of an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli_support import Parser, UsageError, add_debug, is_committed, quiet_jsii, require_assembly, run
from cloud_assembly.reader import load_assembly
from stacks.config import config_with, parse_context
from stacks.synthesize import synthesize


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cdk-out", type=Path, help="a synthesized assembly (default: synthesize cdk.json's in-process)"
    )
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        help="context override when synthesizing, e.g. mrk-toolkit:replicaRegions=us-west-1,eu-west-1",
    )
    add_debug(parser)


def load(cdk_out: Path | None, context: list[str]) -> Any:
    if cdk_out is not None:
        if context:
            raise UsageError(
                f"-c {context[0]} cannot apply to --cdk-out {cdk_out}, which is already synthesized: "
                "drop --cdk-out (the review then synthesizes with -c) or synthesize that folder with those options"
            )
        return load_assembly(require_assembly(cdk_out))
    overrides = parse_context(context)
    config_with(overrides)

    print("synthesizing cdk.json's deployment in-process ...", file=sys.stderr)
    return load_assembly(synthesize(overrides))  # a temp dir, removed when the review exits


def default_regions() -> tuple[str, ...]:
    return config_with({}).regions


def guard_committed(readme: Path, context: list[str], assembly: Any | None) -> None:
    """A committed README shows cdk.json's default deployment, never a one-off (-c, REGIONS=...).
    Called before synthesizing (assembly None: only -c is checked) and again with the assembly."""
    if not is_committed(readme):
        return
    fix = f"the committed {readme} shows cdk.json's default deployment; write the diagram to an uncommitted file"
    if context:
        raise UsageError(f"-c {context[0]}: {fix}, or drop -c")
    regions = sorted({s.region for s in assembly.stacks.values()}) if assembly is not None else []
    if assembly is not None and regions != sorted(default_regions()):
        raise UsageError(
            f"{assembly.directory} is a deployment in {', '.join(regions)}, not the default "
            f"({', '.join(default_regions())}): {fix}, or synthesize the default (make synth, no REGIONS/ARGS)"
        )


def readme_main(argv: list[str]) -> int:
    parser = Parser(prog="python -m review readme", description="Refresh the README diagram.")
    parser.add_argument("readme", type=Path, help="the README to update, e.g. README.md")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the diagram is stale")
    _common(parser)
    args = parser.parse_args(argv)
    from review.diagram import mermaid
    from review.readme import MarkersMissing, refresh

    if not args.readme.is_file():
        raise UsageError(f"{args.readme}: no such file; name the README that holds the diagram markers")
    if not args.check:
        guard_committed(args.readme, args.context, None)
    assembly = load(args.cdk_out, args.context)
    if not args.check:
        guard_committed(args.readme, args.context, assembly)
    try:
        changed = refresh(args.readme, mermaid(assembly), check=args.check)
    except MarkersMissing as exc:
        raise UsageError(f"{args.readme}: {exc}") from None
    if args.check and changed:
        print(f"{args.readme}: the architecture diagram or the role table is stale; run: make diagram")
        return 1
    print(f"{args.readme}: architecture diagram and role table {'updated' if changed else 'up to date'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command; an expected error is one line on stderr and exit code 2."""
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    quiet_jsii()
    if argv[:1] == ["readme"]:
        return readme_main(argv[1:])

    parser = Parser(prog="python -m review", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("review-out"), help="output directory (default review-out)")
    parser.add_argument(
        "--previous",
        type=Path,
        help="a previous report's policy-review.json to list what changed since (default: the one in --out, "
        "which this run replaces; none there: a first run)",
    )
    _common(parser)
    args = parser.parse_args(argv)
    from review.report import write_review

    if args.previous is not None and not args.previous.is_file():
        raise UsageError(f"--previous {args.previous}: no such file; name a policy-review.json a review wrote")
    md_path, json_path = write_review(load(args.cdk_out, args.context), args.out, previous=args.previous)
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
