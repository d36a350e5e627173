"""Command line: `python -m offline demo` (the main job, offline) and `python -m offline verify`
(the same checks against a real deployment)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="synthesize, stand up on the embedded emulated AWS, verify cross-region decrypt")
    demo.add_argument("--cdk-out", type=Path, help="use this synthesized assembly instead of synthesizing")
    demo.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        help="context override, e.g. mrk-toolkit:replicaRegions=us-west-1,eu-west-1",
    )
    demo.add_argument("--lag", type=float, default=1.0, help="emulated replication lag in seconds (default 1.0)")
    demo.add_argument("--log-dir", type=Path, help="where the functions' logs go (default: a temp dir)")
    demo.add_argument("--json", type=Path, help="also write the report as JSON here")

    up = sub.add_parser("up", help="stand the deployment up on 127.0.0.1 for ordinary clients until stdin closes")
    up.add_argument("--cdk-out", type=Path, help="use this synthesized assembly instead of synthesizing")
    up.add_argument("-c", "--context", action="append", default=[], help="context override (as for demo)")
    up.add_argument("--lag", type=float, default=1.0, help="emulated replication lag in seconds (default 1.0)")

    verify = sub.add_parser("verify", help="verify a real deployment (needs AWS credentials)")
    verify.add_argument("--stack-prefix", default="MrkToolkit")
    verify.add_argument("--primary", required=True, help="primary region, e.g. us-east-2")
    verify.add_argument("--replicas", required=True, help="comma-separated replica regions")
    verify.add_argument("--table", default="mrk-toolkit-records")
    verify.add_argument("--sensitive-fields", default="ssn,date_of_birth,card_number")
    verify.add_argument("--deadline", type=float, default=60.0, help="seconds to wait for replication")
    args = parser.parse_args(argv)

    if args.command == "up":
        from offline.emulated import parse_context, serve

        serve(
            cdk_out=args.cdk_out,
            context_overrides=parse_context(args.context),
            lag_seconds=args.lag,
            wait=sys.stdin.read,
        )
        return 0
    if args.command == "demo":
        from offline.emulated import parse_context, run_offline

        report = run_offline(
            cdk_out=args.cdk_out,
            context_overrides=parse_context(args.context),
            lag_seconds=args.lag,
            log_dir=args.log_dir,
        )
    else:
        from offline.deployed import DeployedEnvironment, LambdaInvoker, discover_functions
        from offline.scenario import Verification

        replicas = tuple(r.strip() for r in args.replicas.split(",") if r.strip())
        names = discover_functions(args.stack_prefix, (args.primary, *replicas))
        env = DeployedEnvironment(
            primary_region=args.primary,
            replica_regions=replicas,
            sensitive_fields=tuple(args.sensitive_fields.split(",")),
            table_name=args.table,
            function_names=names,
        )
        report = Verification(
            LambdaInvoker(names), env, replication_deadline_s=args.deadline, extra_checks=env.extra_checks
        ).run()
    print(report.render())
    if getattr(args, "json", None):
        args.json.write_text(json.dumps([c.__dict__ for c in report.checks], indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
