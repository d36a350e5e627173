"""Command line: `python -m offline demo` (the main job, offline), `python -m offline up` (the
emulated deployment kept up on 127.0.0.1 for ordinary clients), `python -m offline deploy` (a
changed config applied to it as a stack update, as `cdk deploy --all` would),
`python -m offline rotate` (the multi-region key rotated on demand), `python -m offline destroy`
(the stacks deleted, what stays behind listed with the commands that remove it),
`python -m offline verify` (the same checks against a real deployment), the region outage runbook:
`outage` / `recover` (the emulator's outage switch), `promote-key` (move the key's primary),
`stack-plan` (what CloudFormation can update while regions are down) and `drill` (every step of
the runbook on the emulator), `python -m offline audit` (who used which key, where, for which
record, from CloudTrail), `python -m offline backfill` (the records written before a beacon field existed
given their beacon, through the functions), and `python -m offline drill --store aurora-postgresql` (the Aurora
store's failover drills on real PostgreSQL servers).

demo synthesizes cdk.json's deployment (plus the -c overrides) in-process, or with the CDK CLI
into --synth-to DIR, or takes an assembly already synthesized with --cdk-out DIR (then -c is
refused: the assembly was made with whatever options it was made with)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from cli_support import Parser, UsageError, add_debug, non_negative_seconds, quiet_jsii, require_assembly, run
from cloud_assembly.reader import load_assembly
from lambda_src.record_crypto.settings import STORE_AURORA_POSTGRESQL, STORE_DYNAMODB, STORES
from stacks.config import CONTEXT_PREFIX, config_with, known_regions, parse_context
from stacks.synthesize import synthesize

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
MAX_LAG_SECONDS = 30.0
UP_PORT = 4577  # `up`'s default port on 127.0.0.1 (README: Deploy for real)
UP_ENV_SHOWN = "cdk.out/offline-up.env"  # `up`'s exports, for `source` (cdk.out/ is gitignored)
UP_ENV_FILE = REPO / UP_ENV_SHOWN


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m offline", description=__doc__)
    add_debug(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    _main_job_parsers(sub)
    _lifecycle_parsers(sub)
    _outage_parsers(sub)
    _verify_parser(sub)
    _audit_parser(sub)
    _backfill_parser(sub)
    return parser


FROM_CONFIG = "default: the config's (cdk.json, -c over it), as destroy reads it"


def _verify_parser(sub: Any) -> None:
    verify = sub.add_parser(
        "verify",
        help="run the main job's checks against a deployment (a real account, or `up`); it deletes what it writes",
        description="The deployment is read from the configuration (cdk.json and -c, as for destroy); a flag "
        "overrides its field. Its tamper checks alter test items, which fires the readers' security alarms: "
        "--no-tamper-checks skips them.",
    )
    _add_context(verify, "the deployment's context, as it was deployed (either store)")
    verify.add_argument("--primary", help=f"primary region ({FROM_CONFIG})")
    verify.add_argument("--replicas", help=f"comma-separated replica regions ({FROM_CONFIG})")
    verify.add_argument("--stack-prefix", help=f"the stacks' prefix ({FROM_CONFIG})")
    verify.add_argument("--table", help=f"the table's name ({FROM_CONFIG})")
    verify.add_argument("--sensitive-fields", help=f"comma-separated ({FROM_CONFIG})")
    verify.add_argument(
        "--no-tamper-checks",
        action="store_true",
        help="skip the checks that alter a stored test item as an attacker would (tampered, moved, planted, "
        "changed, rolled back): no security alarm fires; the other checks run",
    )
    verify.add_argument(
        "--deadline", type=non_negative_seconds(3600), default=60.0, help="seconds to wait for replication"
    )
    add_debug(verify)


def _audit_parser(sub: Any) -> None:
    audit = sub.add_parser(
        "audit",
        help="who used which toolkit key, where, for which record; denials; key administration (CloudTrail)",
        description="Reads each region's CloudTrail event history (LookupEvents) of the records keys: "
        "`python -m offline up` (AWS_ENDPOINT_URL) or a real account (AWS credentials), with the same code.",
    )
    audit.add_argument("--region", action="append", help="a region to read (repeatable; default: cdk.json's regions)")
    audit.add_argument("--record", help="only the uses whose encryption context names this record id")
    audit.add_argument("--since", help="from this time on: ISO 8601 (UTC if no zone) or 30m, 12h, 7d")
    audit.add_argument("--stack-prefix", help=f"the stacks' prefix ({FROM_CONFIG})")
    _add_context(audit, "the deployment's context, as it was deployed")
    audit.add_argument("--json", action="store_true", help="JSON instead of the table")
    add_debug(audit)


def _backfill_parser(sub: Any) -> None:
    from offline.runbooks.backfill import DEFAULT_PAGE_SIZE, DEFAULT_PASSES, DEFAULT_RATE

    backfill = sub.add_parser(
        "backfill",
        help="give the records written before a beacon field existed their beacon (README: Adding a beacon field)",
        description="Reads every record of the primary region through its reader function and rewrites, through "
        "its writer function with the version it read, each one that holds the field but has no beacon; then marks "
        "the field complete in each region whose replica has caught up (what the finders answer as `complete`). "
        "With tenants, each record is read and rewritten as its stored tenant in that tenant's first region; a "
        "record of no known tenant is refused. "
        "Idempotent and resumable: run it again after an interruption. Deploy the field first (cdk deploy, or "
        "`python -m offline deploy`).",
    )
    backfill.add_argument("--field", required=True, help="the beacon field (one of the config's beaconFields)")
    _add_context(backfill, "the deployment's context, as it was deployed (with the field)")
    backfill.add_argument("--stack-prefix", help=f"the stacks' prefix ({FROM_CONFIG})")
    backfill.add_argument(
        "--page-size", type=int, default=DEFAULT_PAGE_SIZE, help="items a scan page (default %(default)s)"
    )
    backfill.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="records read a second at most (default %(default)s)"
    )
    backfill.add_argument("--passes", type=int, default=DEFAULT_PASSES, help="passes at most (default %(default)s)")
    backfill.add_argument(
        "--replication-timeout",
        type=non_negative_seconds,
        default=120.0,
        help="seconds to wait for each replica to catch up before marking it (default %(default)s)",
    )
    add_debug(backfill)


def _backfill(args: argparse.Namespace) -> int:
    """`python -m offline backfill`: the runbook in offline/runbooks/backfill.py."""
    import boto3

    from offline.runbooks.backfill import (
        DynamoDbScan,
        InvokedFunctions,
        PostgresScan,
        backfill,
        function_names,
        marker,
        render,
    )

    config = config_with(_overrides(args.context))
    fields = {f.name: f for f in config.beacon_fields}
    if args.field not in fields:
        raise UsageError(
            f"--field {args.field}: not a beacon field of the config (mrk-toolkit:beaconFields: "
            f"{', '.join(fields) or 'none'}); add it to the config and deploy it first"
        )
    if args.page_size < 1 or args.rate <= 0 or args.passes < 1:
        raise UsageError("--page-size and --passes must be at least 1, --rate above 0")
    field, prefix = fields[args.field], args.stack_prefix or config.stack_prefix
    session = boto3.Session()
    client = lambda service, region: session.client(service, region_name=region)  # noqa: E731
    functions = InvokedFunctions(client, config.primary_region, function_names(client, prefix, config.primary_region))
    if field not in functions.beacon_fields(config.sensitive_fields):
        raise UsageError(
            f"the deployed writer in {config.primary_region} has no beacon '{field.name}' "
            f"({field.bits} bits, {field.normalization}): deploy the config with the field first"
        )
    tenants = {t.tenant_id: t.regions for t in config.tenants} if config.tenants else None
    in_region: dict[str, InvokedFunctions] = {config.primary_region: functions}

    def functions_in(region: str) -> InvokedFunctions:
        if region not in in_region:
            in_region[region] = InvokedFunctions(client, region, function_names(client, prefix, region))
        return in_region[region]

    outcome = backfill(
        field,
        store=DynamoDbScan(client, config.table_name)
        if config.store == STORE_DYNAMODB
        else PostgresScan(client, prefix),
        functions=functions,
        primary=config.primary_region,
        regions=config.regions,
        mark=marker(client, prefix, field),
        page_size=args.page_size,
        rate=args.rate,
        passes=args.passes,
        replication_timeout_s=args.replication_timeout,
        progress=lambda line: print(line, flush=True),
        tenants=tenants,
        functions_in=functions_in,
    )
    print("\n".join(render(outcome)))
    return 0 if outcome.complete else 1


def _add_context(parser: argparse.ArgumentParser, help_text: str = "context override (as for demo)") -> None:
    parser.add_argument("-c", "--context", action="append", default=[], help=help_text)


def _add_lag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lag",
        type=non_negative_seconds(MAX_LAG_SECONDS),
        default=1.0,
        help=f"emulated replication lag in seconds, 0 to {MAX_LAG_SECONDS:g} (default 1.0)",
    )


def _main_job_parsers(sub: Any) -> None:
    """demo (the main job) and up (the deployment kept up for ordinary clients)."""
    demo = sub.add_parser("demo", help="synthesize, stand up on the embedded emulated AWS, verify cross-region decrypt")
    source = demo.add_mutually_exclusive_group()
    source.add_argument("--cdk-out", type=Path, help="use this synthesized assembly (no -c) instead of synthesizing")
    source.add_argument("--synth-to", type=Path, help="synthesize with the CDK CLI (and the -c options) into this dir")
    _add_context(demo, "context override, e.g. mrk-toolkit:replicaRegions=us-west-1,eu-west-1")
    _add_lag(demo)
    demo.add_argument("--log-dir", type=Path, help="where the functions' logs go (default: a temp dir)")
    demo.add_argument("--json", type=Path, help="also write the report as JSON here")
    add_debug(demo)

    serves = "serve the deployment on 127.0.0.1 for ordinary clients until SIGINT (Ctrl-C) or SIGTERM"
    up = sub.add_parser("up", help=serves, description=f"{serves}; stdin plays no part (it may be closed).")
    up.add_argument("--cdk-out", type=Path, help="use this synthesized assembly (no -c) instead of synthesizing")
    up.add_argument("--port", type=_port, default=UP_PORT, help=f"the port on 127.0.0.1 (default {UP_PORT})")
    up.add_argument(
        "--env-file",
        type=Path,
        default=UP_ENV_FILE,
        help=f"write the export lines here, for `source` (default {UP_ENV_SHOWN})",
    )
    _add_context(up)
    _add_lag(up)
    add_debug(up)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1 to 65535)")
    return port


def _lifecycle_parsers(sub: Any) -> None:
    """deploy, destroy and rotate: the runbook verbs of a deployment's life."""
    deploy = sub.add_parser(
        "deploy", help="apply a changed config to the emulator `up` serves, as a stack update (cdk deploy --all)"
    )
    deploy_source = deploy.add_mutually_exclusive_group()
    deploy_source.add_argument("--cdk-out", type=Path, help="send this synthesized assembly (no -c)")
    deploy_source.add_argument("--synth-to", type=Path, help="synthesize with the CDK CLI (and the -c options) here")
    _add_context(deploy)
    add_debug(deploy)

    destroy = sub.add_parser(
        "destroy",
        help="delete the toolkit's stacks in reverse dependency order (a real account, or `up`), then list "
        "what stays behind with the commands that remove it",
    )
    _add_context(destroy)
    destroy.add_argument(
        "--region", help="only the stacks of this former replica region (taken out of replicaRegions and deployed)"
    )
    destroy.add_argument("--yes", action="store_true", help="delete without asking")
    add_debug(destroy)

    rotate = sub.add_parser(
        "rotate", help="rotate the multi-region key on demand, in its primary region (replicas follow)"
    )
    rotate.add_argument("--primary", help=f"the primary region, e.g. us-east-2 ({FROM_CONFIG})")
    rotate.add_argument("--stack-prefix", help=f"the stacks' prefix ({FROM_CONFIG})")
    _add_context(rotate, "the deployment's context, as it was deployed")
    add_debug(rotate)

    erase = sub.add_parser(
        "erase-tenant",
        help="crypto-shred a tenant: disable its key in every region, schedule deletion of the replicas, then "
        "the primary (dry run without --yes); --cancel undoes it within the waiting period",
    )
    erase.add_argument("tenant", help="the tenant id, as in mrk-toolkit:tenants")
    erase.add_argument("--pending-days", type=int, help="7 to 30 (default: the config's keyDeletionWindow)")
    erase.add_argument("--cancel", action="store_true", help="CancelKeyDeletion and re-enable in every region")
    erase.add_argument("--yes", action="store_true", help="do it (default: print the plan)")
    _add_context(erase)
    add_debug(erase)


def _outage_parsers(sub: Any) -> None:
    for verb, text in (("outage", "start an emulated outage of a region"), ("recover", "end it")):
        cmd = sub.add_parser(verb, help=f"{text} (`python -m offline up` only: AWS_ENDPOINT_URL)")
        cmd.add_argument("region", help="e.g. us-east-2")
        if verb == "outage":
            cmd.add_argument("--services", default="", help="only these services, e.g. dynamodb,lambda (default: all)")
        add_debug(cmd)
    promote = sub.add_parser(
        "promote-key", help="move the multi-region key's primary to another region (kms:UpdatePrimaryRegion)"
    )
    promote.add_argument("--to", required=True, dest="to_region", help="the region whose replica becomes primary")
    _add_context(promote)
    add_debug(promote)
    plan = sub.add_parser("stack-plan", help="which stacks CloudFormation can update while regions are down")
    plan.add_argument("--down", required=True, help="comma-separated regions that are down")
    plan.add_argument("--cdk-out", type=Path, help="a synthesized assembly (default: synthesize cdk.json's, with -c)")
    _add_context(plan)
    add_debug(plan)
    drill = sub.add_parser("drill", help="the region outage runbook, every step, on the embedded emulated AWS")
    drill.add_argument("--cdk-out", type=Path, help="use this synthesized assembly (no -c) instead of synthesizing")
    _add_context(drill)
    drill.add_argument("--region", help="the region that goes down (default: the primary)")
    drill.add_argument(
        "--lag", type=non_negative_seconds(MAX_LAG_SECONDS), default=0.5, help="emulated replication lag (default 0.5)"
    )
    drill.add_argument(
        "--store",
        choices=STORES,
        help=f"default: the config's ({CONTEXT_PREFIX}store, -c over cdk.json) or the --cdk-out assembly's; "
        f"{STORE_DYNAMODB}: the region outage runbook; {STORE_AURORA_POSTGRESQL}: a planned switchover and an "
        "unplanned failover on the real PostgreSQL servers of the Aurora assembly stood up (-c: as for demo)",
    )
    drill.add_argument("--json", type=Path, help="also write the results as JSON here")
    add_debug(drill)


def _overrides(pairs: list[str]) -> dict[str, Any]:
    """``-c key=value`` pairs, checked together with cdk.json before anything is synthesized."""
    overrides = parse_context(pairs)
    config_with(overrides)
    return overrides


# What the CDK CLI prints that a user cannot act on here: its notices are off (--no-notices); the count
# of unconfigured feature flags has no switch (aws/aws-cdk-cli#913) and configuring them would change the
# templates; "Supply a stack id" is synth's hint for a terminal.
CDK_CLI_NOISE = re.compile(r"^(\d+ feature flags are not configured\. |Supply a stack id )")


def _cdk_cli_synth(outdir: Path, pairs: list[str]) -> Path:
    cdk = REPO / "node_modules" / ".bin" / "cdk"
    if not cdk.exists():
        raise UsageError("the pinned CDK CLI is not installed (node_modules/.bin/cdk): run `make setup`")
    context = (arg for pair in pairs for arg in ("-c", pair))
    command = [str(cdk), "synth", "-q", "--no-notices", "-o", str(outdir), *context]
    print("$ cdk " + " ".join(command[1:]), file=sys.stderr, flush=True)
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    done = subprocess.run(  # noqa: S603
        command, cwd=REPO, env={**os.environ, "PATH": path}, check=False, stderr=subprocess.PIPE, text=True
    )
    sys.stderr.write("".join(line for line in done.stderr.splitlines(True) if not CDK_CLI_NOISE.match(line)))
    if done.returncode != 0:
        raise UsageError(f"`cdk synth` failed with exit code {done.returncode}; its message is above")
    return outdir


def _source(args: argparse.Namespace) -> tuple[Path | None, dict[str, Any]]:
    """(the assembly given with --cdk-out, or None to synthesize; the -c overrides, checked)."""
    if args.cdk_out is not None and args.context:
        raise UsageError(
            f"-c {args.context[0]} cannot apply to --cdk-out {args.cdk_out}, which is already synthesized: "
            f"drop --cdk-out ({args.command} then synthesizes with -c) or synthesize that folder with those options"
        )
    overrides = _overrides(args.context)
    return (require_assembly(args.cdk_out) if args.cdk_out is not None else None), overrides


def _store_of(cdk_out: Path | None, overrides: dict[str, Any]) -> str:
    """The store of the --cdk-out assembly, or of the config (cdk.json with the -c overrides)."""
    if cdk_out is None:
        return config_with(overrides).store
    stacks = load_assembly(cdk_out).stacks.values()
    return STORE_AURORA_POSTGRESQL if any(s.resources("AWS::RDS::GlobalCluster") for s in stacks) else STORE_DYNAMODB


def _demo(args: argparse.Namespace) -> Any:
    cdk_out, overrides = _source(args)
    if args.synth_to is not None:
        cdk_out = _cdk_cli_synth(args.synth_to, args.context)
    from offline.verification.emulated import run_offline

    return run_offline(cdk_out=cdk_out, context_overrides=overrides, lag_seconds=args.lag, log_dir=args.log_dir)


def _known_region(flag: str, region: str) -> None:
    if region not in known_regions():
        raise UsageError(f"{flag} {region}: not a known AWS region; e.g. --primary us-east-2 --replicas us-west-1")


def _regions(primary: str, replicas_text: str) -> tuple[str, ...]:
    replicas = tuple(r.strip() for r in replicas_text.split(",") if r.strip())
    for flag, region in (("--primary", primary), *(("--replicas", r) for r in replicas)):
        _known_region(flag, region)
    if not replicas:
        raise UsageError(f"--replicas {replicas_text!r} names no region: e.g. --replicas us-west-1,eu-west-1")
    return replicas


def _verify(args: argparse.Namespace) -> Any:
    """The main job's list of checks (the one `demo` runs) against a deployment of either store. The Aurora
    store's checks that need an SQL session (the clusters are in isolated subnets) are N/A, and its rows stay
    (no role verify holds may delete one): the last check names them and the statement that removes them."""
    config = config_with(_overrides(args.context))
    primary = args.primary or config.primary_region
    replicas = _regions(primary, args.replicas) if args.replicas else config.replica_regions
    _known_region("--primary", primary)
    if primary in replicas:
        raise UsageError(f"--primary {primary} is also a replica region ({','.join(replicas)}): name it once")
    from offline.verification.checks import Capability
    from offline.verification.deployed import DeployedEnvironment, discover_functions
    from offline.verification.scenario import run_main_job

    prefix = args.stack_prefix or config.stack_prefix
    env = DeployedEnvironment(
        primary_region=primary,
        replica_regions=replicas,
        sensitive_fields=tuple(args.sensitive_fields.split(",")) if args.sensitive_fields else config.sensitive_fields,
        table_name=args.table or config.table_name,
        function_names=discover_functions(prefix, (primary, *replicas)),
        replication_deadline_s=args.deadline,
        stack_prefix=prefix,
        # Altering a stored item is the DynamoDB store's tamper checks' way; the Aurora store's need SQL.
        capabilities=frozenset()
        if args.no_tamper_checks or config.store != STORE_DYNAMODB
        else frozenset({Capability.ALTER_ITEMS}),
        store=config.store,
        beacon_fields=config.beacon_fields,
    )
    for line in _verify_notice(env, tamper=not args.no_tamper_checks):
        print(line, file=sys.stderr, flush=True)
    return run_main_job(env)


def _audit(args: argparse.Namespace) -> int:
    """`python -m offline audit`: the records keys' CloudTrail history as a table or JSON."""
    import boto3

    from offline.runbooks.audit_trail import collect, parse_since, render_json, render_table

    config = config_with(_overrides(args.context))
    regions = args.region or list(config.regions)
    for region in regions:
        _known_region("--region", region)
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    session = boto3.Session()
    rows = collect(
        lambda service, region: session.client(service, region_name=region),
        regions,
        args.stack_prefix or config.stack_prefix,
        since=since,
        record=args.record,
    )
    print(render_json(rows, args.record) if args.json else render_table(rows, args.record))
    return 0


def _verify_notice(env: Any, *, tamper: bool) -> list[str]:
    """What verify states before it starts: what it writes, and which alarms its tamper checks fire."""
    regions = (env.primary_region, *env.replica_regions)
    if env.store != STORE_DYNAMODB:
        return [
            f"verify: {env.stack_prefix} in {', '.join(regions)}, table {env.table_name} ({env.store}). It writes "
            f"test rows (ids verify-<run>-...) through the writer in {env.primary_region}; no role it holds may "
            "delete a row: the last check names the statement that removes them. The checks that need an SQL "
            "session (the attacker's row edits) are N/A: no stored row is altered and no security alarm fires."
        ]
    lines = [
        f"verify: {env.stack_prefix} in {', '.join(regions)}, table {env.table_name}. It writes test items "
        f"(ids verify-<run>-...) through the writer in {env.primary_region} and deletes every one at the end, "
        "whatever happens (the last check says what it wrote and deleted)."
    ]
    if tamper:
        alarms = ", ".join(f"{env.stack_prefix}-{r}-reader-security-refusals" for r in env.replica_regions)
        lines.append(
            "verify: WARNING: its tamper checks alter test items as an attacker would; the readers refuse them "
            f"and these security alarms go to ALARM and notify their topics: {alarms}. Tell whoever is on call "
            "first, or run with --no-tamper-checks."
        )
    else:
        lines.append("verify: --no-tamper-checks: no stored item is altered and no security alarm fires.")
    return lines


def _rotate(args: argparse.Namespace) -> int:
    """RotateKeyOnDemand on the primary MRK (a real account, or `python -m offline up`)."""
    import boto3

    from offline.runbooks.rotation import primary_key_arn, rotate

    config = config_with(_overrides(args.context))
    primary = args.primary or config.primary_region
    _known_region("--primary", primary)
    kms = boto3.client("kms", region_name=primary)
    prefix = args.stack_prefix or config.stack_prefix
    arn = primary_key_arn(boto3.client("cloudformation", region_name=primary), prefix, primary)
    config = kms.describe_key(KeyId=arn)["KeyMetadata"].get("MultiRegionConfiguration", {})
    if config.get("MultiRegionKeyType") == "REPLICA":
        home = config.get("PrimaryKey", {}).get("Region", "its primary region")
        raise UsageError(f"{primary} holds a replica of the multi-region key: run with --primary {home}")
    print(rotate(kms, arn))
    return 0


def _erase_tenant(args: argparse.Namespace) -> int:
    """Crypto-shredding of one tenant (offline/runbooks/erasure.py), through the deployment's config."""
    import boto3

    from offline.runbooks import erasure

    config = config_with(_overrides(args.context))
    if not config.tenants:
        raise UsageError("this deployment has no tenants (mrk-toolkit:tenants): nothing to erase")
    tenant = next((t for t in config.tenants if t.tenant_id == args.tenant), None)
    if tenant is None:
        known = ", ".join(t.tenant_id for t in config.tenants)
        raise UsageError(f"unknown tenant {args.tenant!r}: the deployment's tenants are {known}")
    days = config.key_pending_window_days if args.pending_days is None else args.pending_days
    if not erasure.MIN_PENDING_DAYS <= days <= erasure.MAX_PENDING_DAYS:
        raise UsageError(f"--pending-days {days}: KMS accepts 7 to 30")
    clients: dict[str, Any] = {}

    def kms_for(region: str) -> Any:
        return clients.setdefault(region, boto3.client("kms", region_name=region))

    keys = erasure.find_keys(kms_for, erasure.tenant_alias(config.key_alias, tenant.tenant_id), tenant.regions)
    if args.cancel:
        lines = erasure.cancel(kms_for, keys)
    elif not args.yes:
        lines = ["dry run (add --yes to do it):", *erasure.plan(keys, days)]
    else:
        lines = erasure.erase(kms_for, keys, days)
    for line in lines:
        print(line)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    cdk_out, overrides = _source(args)
    if args.synth_to is not None:
        cdk_out = _cdk_cli_synth(args.synth_to, args.context)
    from offline.runbooks import redeploy

    if cdk_out is None:
        cdk_out = synthesize(overrides)
    for line in redeploy.render(redeploy.send_assembly(cdk_out)):
        print(line)
    return 0


def _destroy(args: argparse.Namespace) -> int:
    import boto3

    from offline.runbooks.teardown import Teardown, TeardownFailed, deletion_waves, render_leftovers

    config = config_with(_overrides(args.context))
    if args.region is not None:
        _known_region("--region", args.region)
        if args.region in config.regions:
            raise UsageError(
                f"--region {args.region} is still in the deployment (primary {config.primary_region}, replicas "
                f"{','.join(config.replica_regions)}): take it out of replicaRegions and deploy first (README: Add or "
                "remove a region), or destroy everything without --region"
            )
    waves = deletion_waves(
        config.stack_prefix,
        config.primary_region,
        config.replica_regions,
        only_region=args.region,
        tenants=bool(config.tenants),
        aurora=config.store == STORE_AURORA_POSTGRESQL,
    )
    teardown = Teardown(lambda service, region: boto3.client(service, region_name=region), print)
    waves = teardown.deployed(waves)
    stacks = [name for wave in waves for name, _ in wave]
    if not stacks:
        print("no stack of the toolkit is deployed there; nothing to delete")
        return 0
    account = boto3.client("sts", region_name=config.primary_region).get_caller_identity()["Account"]
    _confirm(args.yes, f"delete {len(stacks)} stacks in account {account}: {', '.join(stacks)}?")
    resources = teardown.inventory(waves)
    try:
        teardown.delete(waves)
    except TeardownFailed as failure:
        raise UsageError(str(failure)) from None
    for line in render_leftovers(teardown.leftovers(resources)):
        print(line)
    return 0


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Not asked (no terminal): run again with --yes")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise UsageError("nothing deleted")


def _outage_switch(args: argparse.Namespace) -> int:
    """`outage` / `recover`: the emulator's outage switch, reached like any AWS endpoint."""
    import boto3

    from offline.runbooks.outage import set_outage

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise UsageError(
            f"{args.command} acts on the emulator only (there is no outage switch in a real account): start "
            f"`python -m offline up` and `source {UP_ENV_SHOWN}` (the AWS_ENDPOINT_URL and keys it "
            "prints)"
        )
    _known_region(args.command, args.region)
    services = [s.strip() for s in getattr(args, "services", "").split(",") if s.strip()]
    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise UsageError(f"no AWS credentials: `source {UP_ENV_SHOWN}` (the keys `python -m offline up` prints)")
    down = args.command == "outage"
    outages = set_outage(endpoint, credentials, args.region, down=down, services=services)
    what = ", ".join(services) if services else "every service"
    print(f"{args.region}: {'DOWN (' + what + ')' if down else 'answers again'}; outages now: {outages or 'none'}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    import boto3

    from offline.runbooks.outage import clients_of, promote_key

    config = config_with(_overrides(args.context))
    if args.to_region not in config.regions:
        raise UsageError(f"--to {args.to_region}: not a region of the deployment ({', '.join(config.regions)})")
    line = promote_key(
        clients_of(boto3.Session()),
        stack_prefix=config.stack_prefix,
        to_region=args.to_region,
        home_region=config.primary_region,
    )
    print(line)
    return 0


def _stack_plan(args: argparse.Namespace) -> int:
    from offline.runbooks.outage import stack_plan

    cdk_out, overrides = _source(args)
    assembly = load_assembly(cdk_out or synthesize(overrides))
    regions = {s.region for s in assembly.stacks.values()}
    down = [r.strip() for r in args.down.split(",") if r.strip()]
    unknown = [r for r in down if r not in regions]
    if unknown or not down:
        raise UsageError(f"--down {args.down}: name regions of the deployment ({', '.join(sorted(regions))})")
    print("\n".join(stack_plan(assembly, down)))
    return 0


def _drill(args: argparse.Namespace) -> Any:
    """The store's drills: the config's store (-c over cdk.json) or the --cdk-out assembly's, --store overriding."""
    from offline.verification.drill import OutageDrill
    from offline.verification.emulated import stood_up

    cdk_out, overrides = _source(args)
    if args.store is not None and cdk_out is None:
        overrides = {**overrides, f"{CONTEXT_PREFIX}store": args.store}
    store = _store_of(cdk_out, overrides)
    if args.store is not None and args.store != store:
        raise UsageError(
            f"--store {args.store}: the assembly in --cdk-out {cdk_out} has store {store}; drop --store or "
            f"--cdk-out (drill then synthesizes with store {args.store})"
        )
    if store == STORE_AURORA_POSTGRESQL:
        if args.region is not None:
            raise UsageError(
                f"--region {args.region} takes a region down in the {STORE_DYNAMODB} store's outage runbook; the "
                f"{STORE_AURORA_POSTGRESQL} failover drills move the primary themselves: drop --region"
            )
        return _failover_drill(cdk_out, overrides)
    with stood_up(load_assembly(cdk_out or synthesize(overrides)), lag_seconds=args.lag) as env:
        return OutageDrill(env, down=args.region).run()


def _failover_drill(cdk_out: Path | None, overrides: dict[str, Any]) -> Any:
    """The failover drills on the synthesized Aurora assembly stood up as the Aurora main job stands it up."""
    from offline.verification.failover_drill import drill_world, failover_report

    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with drill_world(cdk_out, context=overrides, progress=say) as world:
        return failover_report(world, say)


class _Signalled(BaseException):  # as KeyboardInterrupt: no `except Exception` swallows it
    """SIGINT or SIGTERM reached `up`: unwind the stand-up (servers, functions) and stop."""


def _raise_on_signals() -> dict[int, Any]:
    """SIGINT and SIGTERM raise _Signalled once (a second one, while stopping, is ignored);
    returns the handlers to restore."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        for each in (signal.SIGINT, signal.SIGTERM):
            signal.signal(each, signal.SIG_IGN)
        raise _Signalled(signal.Signals(signum).name)

    return {each: signal.signal(each, handler) for each in (signal.SIGINT, signal.SIGTERM)}


def _until_signalled() -> None:
    """`up` serves until a signal raises _Signalled (stdin plays no part: it may be closed)."""
    forever = threading.Event()
    while not forever.wait(3600):
        pass


def _up(args: argparse.Namespace) -> int:
    from offline.emulator.server import PortTaken, check_port_free

    cdk_out, overrides = _source(args)
    taken = f"pick another with --port (the default is {UP_PORT}), or stop what is using it"
    try:
        check_port_free(args.port)
    except PortTaken as exc:
        raise UsageError(f"{exc}: {taken}") from None
    from offline.verification.emulated import serve

    previous = _raise_on_signals()
    try:
        serve(
            cdk_out=cdk_out,
            context_overrides=overrides,
            lag_seconds=args.lag,
            wait=_until_signalled,
            port=args.port,
            env_file=args.env_file,
        )
    except _Signalled as signalled:
        print(f"offline up: stopped ({signalled}): the emulated deployment is gone", flush=True)
        return 0
    except PortTaken as exc:
        raise UsageError(f"{exc}: {taken}") from None
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
    print("offline up: stopped", flush=True)
    return 0


def _rerun_under_venv() -> None:
    """`python -m offline ...` with a python that lacks aws_cdk (.venv not activated): run the same
    command with .venv/bin/python (as app.py does for `npx cdk`), else say how to get one."""
    if importlib.util.find_spec("aws_cdk") is not None:
        return
    venv_python = VENV / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != VENV.resolve():
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        os.execve(venv_python, [str(venv_python), "-m", "offline", *sys.argv[1:]], {**os.environ, "PYTHONPATH": path})  # noqa: S606
    print(
        f"error: aws_cdk is not installed for {sys.executable}: run `make setup` (creates .venv, which "
        "`python -m offline` then uses), or activate the virtualenv that has requirements.txt installed",
        file=sys.stderr,
    )
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    """The command; an expected error is one line on stderr and exit code 2."""
    if argv is None:
        _rerun_under_venv()
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    quiet_jsii()
    args = _parser().parse_args(argv)
    if args.command == "up":
        return _up(args)
    if args.command == "rotate":
        return _rotate(args)
    if args.command == "erase-tenant":
        return _erase_tenant(args)
    if args.command == "deploy":
        return _deploy(args)
    if args.command == "destroy":
        return _destroy(args)
    if args.command == "audit":
        return _audit(args)
    if args.command == "backfill":
        return _backfill(args)
    simple = {"outage": _outage_switch, "recover": _outage_switch, "promote-key": _promote, "stack-plan": _stack_plan}
    if args.command in simple:
        return simple[args.command](args)
    report = {"demo": _demo, "drill": _drill}.get(args.command, _verify)(args)
    print(report.render())
    if getattr(args, "json", None):
        args.json.write_text(report.as_json())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
