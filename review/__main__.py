"""Command line of the policy review.

python -m review [--cdk-out cdk.out] [--out review-out] [-c key=value ...]
    write policy-review.md and policy-review.json (synthesizes cdk.json's deployment in-process,
    with the -c overrides, when --cdk-out is not given)
python -m review readme README.md [--check] [--cdk-out cdk.out] [-c key=value ...]
    rewrite the architecture diagram between the README's markers (--check: exit 1 if stale)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any


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


def load(cdk_out: Path | None, context: list[str]) -> Any:
    from offline.assembly import load_assembly

    if cdk_out is not None:
        if context:
            raise SystemExit("-c applies when synthesizing; with --cdk-out, synthesize with those options instead")
        return load_assembly(cdk_out)
    from offline.emulated import parse_context, synthesize

    print("synthesizing cdk.json's deployment in-process ...", file=sys.stderr)
    return load_assembly(synthesize(parse_context(context), tempfile.mkdtemp(prefix="mrk-toolkit-review-")))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["readme"]:
        parser = argparse.ArgumentParser(prog="python -m review readme", description="Refresh the README diagram.")
        parser.add_argument("readme", type=Path, help="the README to update, e.g. README.md")
        parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the diagram is stale")
        _common(parser)
        args = parser.parse_args(argv[1:])
        from review.diagram import mermaid
        from review.readme import MarkersMissing, refresh

        try:
            changed = refresh(args.readme, mermaid(load(args.cdk_out, args.context)), check=args.check)
        except MarkersMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.check and changed:
            print(f"{args.readme}: the architecture diagram is stale; run: python -m review readme {args.readme}")
            return 1
        print(f"{args.readme}: architecture diagram {'updated' if changed else 'up to date'}")
        return 0

    parser = argparse.ArgumentParser(
        prog="python -m review", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("review-out"), help="output directory (default review-out)")
    _common(parser)
    args = parser.parse_args(argv)
    from review.report import write_review

    md_path, json_path = write_review(load(args.cdk_out, args.context), args.out)
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
