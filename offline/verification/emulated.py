"""The main job offline: synthesize, stand the assembly up on the emulated AWS, verify."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud_assembly.intrinsics import UnsupportedTemplate
from cloud_assembly.reader import CloudAssembly, load_assembly
from lambda_src.record_crypto.observability import (
    DIMENSION_OPERATION,
    DIMENSION_TABLE,
    NAMESPACE,
    OPERATION_READ,
    SECURITY_REFUSALS,
)
from lambda_src.record_crypto.settings import (
    ENV_ALGORITHM_SUITE,
    ENV_CACHE_MAX_AGE,
    ENV_DATA_KEY_CACHE,
    ENV_SENSITIVE_FIELDS,
    STORE_AURORA_POSTGRESQL,
)
from offline.emulator.deployment import Change, Deployment
from offline.emulator.functions import FunctionHost
from offline.emulator.provisioner import Provisioner
from offline.emulator.replication import GlobalTablesEmulator
from offline.emulator.served import ServedApis
from offline.emulator.server import MOTO_ACCOUNT, EmulatedAws
from offline.runbooks.rotation import rotation_check
from offline.verification.invariants import DeployedReader, deployed_checks
from offline.verification.probes import KmsProbes, condition_checks
from offline.verification.resources import ResourceReader, resource_checks
from offline.verification.scenario import Check, Invocation, Report, Verification
from offline.verification.signals import SignalsReader, Watch, alarm_checks, breaching_periods, find_alarm, publish_emf
from stacks.synthesize import synthesize

# Function settings that say which config is tested (the suite, the cache), shown in the header.
HEADER_SETTINGS = {ENV_ALGORITHM_SUITE, ENV_DATA_KEY_CACHE, ENV_CACHE_MAX_AGE, ENV_SENSITIVE_FIELDS}


class EmulatorInvoker:
    def __init__(self, host: FunctionHost) -> None:
        self.host = host

    def invoke(self, region: str, kind: str, event: dict[str, Any]) -> Invocation:
        reply = self.host.invoke(region, kind, event)
        return Invocation(
            result=reply.get("result") or {},
            calls=reply.get("calls"),
            duration_ms=reply.get("duration_ms"),
            function_error=reply.get("function_error"),
        )


@dataclass
class EmulatedEnvironment:
    aws: EmulatedAws
    deployment: Deployment
    host: FunctionHost
    primary_region: str
    replica_regions: tuple[str, ...]
    sensitive_fields: tuple[str, ...]
    controls_replication_lag: bool = True
    replication: GlobalTablesEmulator | None = None
    provisioner: Provisioner | None = None
    _lifecycle_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def apply(self, assembly: CloudAssembly) -> list[Change]:
        """Deploy a changed assembly over the running deployment, as a stack UPDATE
        (``python -m offline deploy``); replication and the functions follow it."""
        return self._change(lambda provisioner: provisioner.apply(self.deployment, assembly))

    def delete_stack(self, name: str) -> list[Change]:
        """CloudFormation's DeleteStack on the running deployment (honours DeletionPolicy)."""
        return self._change(lambda provisioner: provisioner.delete_stack(name, self.deployment))

    def _change(self, operation: Callable[[Provisioner], list[Change]]) -> list[Change]:
        if self.provisioner is None:
            raise RuntimeError("this environment was not stood up by the emulator's provisioner")
        with self._lifecycle_lock:
            try:
                paused = self.replication.paused() if self.replication else contextlib.nullcontext()
                with paused:
                    try:
                        return operation(self.provisioner)
                    finally:
                        if self.replication is not None:
                            self.replication.sync(self.deployment.tables, self.deployment.stream_arns)
            finally:
                self.host.sync()
                self.replica_regions = tuple(r for r in self.deployment.tables if r != self.primary_region)

    @property
    def probes(self) -> KmsProbes:
        return KmsProbes(self.aws, self.deployment, self.host)

    def add_replication_check(self, report: Report) -> None:
        if self.replication is not None and self.replication.errors:
            errors = "; ".join(self.replication.errors[:3])
            report.checks.append(Check("replication emulation ran without errors", False, errors, 0.0))

    def _ddb(self, region: str) -> Any:
        return self.aws.client("dynamodb", region)

    def raw_item(self, region: str, item_id: str) -> dict[str, Any] | None:
        table = self.deployment.tables[region]
        return self._ddb(region).get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True).get("Item")

    def put_raw_item(self, region: str, item: dict[str, Any]) -> None:
        self._ddb(region).put_item(TableName=self.deployment.tables[region], Item=item)

    def cross_role_denied(self, region: str, code_of: str, role_of: str, event: dict[str, Any]) -> tuple[bool, str]:
        """Run one function's code under the other's role; the role must be refused. The code
        may be stopped by its first call (e.g. the reader's GetItem), so the KMS action that
        code needs is also asked of the emulated KMS directly with that role's credentials."""
        reply = self.host.invoke(region, code_of, event, as_role_of=role_of)
        result = reply.get("result") or {}
        error = result.get("error", {})
        denied = [c for c in reply.get("calls", []) if not c["allowed"]]
        if error.get("type") != "AccessDenied" or not denied:
            return False, f"{code_of} code under the {role_of} role was not denied: {str(result)[:200]}"
        kms_action = "kms:GenerateDataKey" if code_of == "writer" else "kms:Decrypt"
        allowed, why = self.probes.kms_as(region, role_of, kms_action, self.probes.record_context())
        if allowed:
            return False, f"the {role_of} role may {kms_action} on the {region} MRK: {why}"
        return True, (
            f"{code_of} code under the {role_of} role: AccessDenied on {denied[0]['action']}; "
            f"{kms_action} on the {region} MRK denied too ({why})"
        )

    @property
    def role_arns(self) -> dict[tuple[str, str], str]:
        return {(f.region, f.kind): f.role_arn for f in self.deployment.functions}

    @property
    def stack_prefix(self) -> str:
        """The stackPrefix the templates were synthesized with (the writer's stack is <prefix>-Functions-<primary>)."""
        return self.deployment.function(self.primary_region, "writer").stack.removesuffix(
            f"-Functions-{self.primary_region}"
        )

    def resource_reader(self) -> ResourceReader:
        regions = (self.primary_region, *self.replica_regions)
        return ResourceReader(self.aws.client, self.deployment.account, self.role_arns, self.stack_prefix, regions)

    def extra_checks(self) -> list[tuple[str, Callable[[], str]]]:
        """Conditions decided by the emulated KMS, then the invariants read back from the deployment."""
        regions = (self.primary_region, *self.replica_regions)
        table = self.deployment.tables[self.primary_region]
        reader = DeployedReader(
            client=self.aws.client,
            account=self.deployment.account,
            table_name=table,
            role_arns=self.role_arns,
            stack_prefix=self.stack_prefix,
        )
        record_context = lambda: self.host.seen_contexts.get("kms:GenerateDataKey")  # noqa: E731
        checks = condition_checks(self.probes, regions, table) + deployed_checks(reader, regions, record_context)
        names = {(f.region, f.kind): f.name for f in self.deployment.functions}
        checks += alarm_checks(SignalsReader(self.aws.client), regions, table, names)
        tamper = "signals: the main job's tamper refusals reach the security alarms, which fire (emulated evaluation)"
        return [*checks, rotation_check(self), (tamper, self._tamper_alarms)]

    def _tamper_alarms(self) -> str:
        """The functions' metric lines go to CloudWatch as CloudWatch Logs would put them; the
        reader's security alarm of each replica region, where the main job tampered with records,
        must then breach."""
        published = publish_emf(self.aws.client, self.host.logs_by_region())
        table = self.deployment.tables[self.primary_region]
        reader = SignalsReader(self.aws.client)
        dims = tuple(sorted(((DIMENSION_TABLE, table), (DIMENSION_OPERATION, OPERATION_READ))))
        seen = []
        for region in self.replica_regions:
            refused = sum(
                d.value for d in published.get(region, []) if d.name == SECURITY_REFUSALS and d.dimensions == dims
            )
            assert refused >= 1, f"the tamper checks in {region} left no SecurityRefusals metric line"
            alarm = find_alarm(reader.alarms(region), Watch("", NAMESPACE, SECURITY_REFUSALS, dims))
            assert alarm is not None, f"no alarm in {region} watches the reader's SecurityRefusals"
            breaching = breaching_periods(self.aws.client, region, alarm)
            assert breaching, f"{alarm['AlarmName']} would not fire on {refused:.0f} security refusals"
            seen.append(f"{region}: {refused:.0f} refusals, {alarm['AlarmName']} breached")
        return "; ".join(seen)

    def report_header(self, assembly: CloudAssembly) -> list[str]:
        writer_env = self.deployment.function(self.primary_region, "writer").environment
        options = ", ".join(f"{k}={v}" for k, v in sorted(writer_env.items()) if k in HEADER_SETTINGS)
        return [
            f"config: account {self.deployment.account}, primary {self.primary_region}, replicas "
            f"{', '.join(self.replica_regions)}; {options or 'function settings not found'}",
            f"assembly: {assembly.directory}",
            "EMULATED: global tables replication, IAM/KMS policy evaluation (policy_engine), DynamoDB's use "
            "of each replica's SSE key (kms:ViaService), Lambda hosting",
            "REAL: moto's KMS cryptography and key replication, the AWS Encryption SDK, the handlers' code "
            "(lambda_src) under their roles' credentials",
        ]

    def function_logs(self) -> str | None:
        return "\n".join(self.host.logs().values())


def aurora_header(env: EmulatedEnvironment, assembly: CloudAssembly) -> list[str]:
    recorded = ", ".join(
        f"{kind.split('::', 1)[1]} x{len(ids)}" for kind, ids in sorted(env.deployment.recorded.items())
    )
    config, where = env.report_header(assembly)[:2]
    return [
        config.replace("replicas", "secondaries") + f", store={STORE_AURORA_POSTGRESQL}",
        where,
        "EMULATED: the Aurora global database as one PostgreSQL 16.2 server per region, the primary streaming to "
        "hot standbys (physical replication, asynchronous); IAM/KMS/Secrets Manager policy evaluation "
        "(policy_engine); Lambda hosting",
        "REAL: PostgreSQL (SQL, roles, privileges, replication, read-only standbys), the db_setup custom resource's "
        "and the handlers' code (lambda_src) under their roles' credentials, moto's KMS cryptography and key "
        "replication, the AWS Encryption SDK",
        f"RECORDED, not emulated: {recorded}",
    ]


def assembly_account(assembly: CloudAssembly) -> str:
    """The account the templates name, or moto's default one for an account-agnostic assembly."""
    accounts = sorted({s.account for s in assembly.stacks.values() if s.account})
    if len(accounts) > 1:
        raise UnsupportedTemplate(f"the assembly names several accounts ({', '.join(accounts)}); deploy one at a time")
    return accounts[0] if accounts else MOTO_ACCOUNT


@contextlib.contextmanager
def stood_up(
    assembly: CloudAssembly,
    *,
    lag_seconds: float = 1.0,
    progress: Callable[[str], None] | None = None,
    log_dir: Path | None = None,
) -> Iterator[EmulatedEnvironment]:
    """The assembly deployed on a fresh emulated AWS with replication and functions running."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    with EmulatedAws(assembly_account(assembly)) as aws:
        say(f"emulated AWS (moto) on {aws.endpoint_url}, account {aws.account}")
        provisioner = Provisioner(aws.session, aws.account, aws.endpoint_url, say)
        provisioner.credentials_for = aws.credentials_for
        with _database_servers_stopped_on_exit(provisioner):
            deployment = provisioner.deploy(assembly)
            if deployment.aurora is not None:
                from offline.verification.aurora_scenario import aurora_environment

                with aurora_environment(aws, deployment, say, log_dir) as env:
                    yield env
                return
        writers = [f for f in deployment.functions if f.kind == "writer"]
        if not writers:
            raise RuntimeError("the assembly defines no writer function")
        primary = next(s.region for s in assembly.stacks.values() if s.resources("AWS::DynamoDB::GlobalTable"))
        replicas = tuple(r for r in deployment.tables if r != primary)
        sensitive = tuple(deployment.function(primary, "writer").environment.get(ENV_SENSITIVE_FIELDS, "").split(","))
        replication = GlobalTablesEmulator(
            aws.session,
            aws.endpoint_url,
            tables=deployment.tables,
            stream_arns=deployment.stream_arns,
            lag_seconds=lag_seconds,
        ).start()
        say(
            f"EMULATED global tables replication between {', '.join(deployment.tables)} "
            f"(lag {lag_seconds:.1f}s, last writer wins)"
        )
        host = FunctionHost(aws, deployment, log_dir=log_dir)
        env = EmulatedEnvironment(
            aws, deployment, host, primary, replicas, sensitive, replication=replication, provisioner=provisioner
        )
        aws.gateway.served = ServedApis(deployment, host, aws.gateway.state, lifecycle=env)
        try:
            host.start_all()
            say(f"started {len(deployment.functions)} functions under their own roles (logs in {host.log_dir})")
            yield env
        finally:
            replication.stop()
            host.stop()


@contextlib.contextmanager
def _database_servers_stopped_on_exit(provisioner: Provisioner) -> Iterator[None]:
    """The PostgreSQL servers of an Aurora deployment stop with it, even when deploying fails."""
    try:
        yield
    finally:
        for deployment in provisioner.deployments:
            if deployment.aurora is not None:
                deployment.aurora.stop()


def run_offline(
    *,
    cdk_out: Path | None = None,
    context_overrides: dict[str, Any] | None = None,
    lag_seconds: float = 1.0,
    progress: Callable[[str], None] | None = None,
    log_dir: Path | None = None,
) -> Report:
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    t0 = time.monotonic()
    if cdk_out is None:
        say("synthesizing the deployment (cdk.json context, all compliance packs) ...")
        cdk_out = synthesize(context_overrides or {})
    assembly: CloudAssembly = load_assembly(cdk_out)
    say(
        f"cloud assembly {cdk_out}: {len(assembly.stacks)} stacks in {len(assembly.waves())} waves "
        f"({time.monotonic() - t0:.1f}s)"
    )
    with stood_up(assembly, lag_seconds=lag_seconds, progress=say, log_dir=log_dir) as env:
        if env.deployment.aurora is not None:
            from offline.verification.aurora_scenario import AuroraVerification

            report = AuroraVerification(
                EmulatorInvoker(env.host),
                env,
                replication_deadline_s=10.0,
                progress=say,
                header=aurora_header(env, assembly),
                extra_checks=lambda: resource_checks(env.resource_reader()),
            ).run()
            say(f"finished in {time.monotonic() - t0:.1f}s")
            return report
        report = Verification(
            EmulatorInvoker(env.host),
            env,
            replication_deadline_s=max(10.0, lag_seconds * 10),
            progress=say,
            extra_checks=env.extra_checks,
            header=env.report_header(assembly),
        ).run()
        env.add_replication_check(report)
    say(f"finished in {time.monotonic() - t0:.1f}s")
    return report


def serve(
    *, cdk_out: Path | None, context_overrides: dict[str, Any], lag_seconds: float, wait: Callable[[], None]
) -> None:
    """`python -m offline up`: the deployment stays up on 127.0.0.1 for ordinary clients until
    ``wait`` returns (stdin closed or Ctrl-C)."""
    assembly = load_assembly(cdk_out or synthesize(context_overrides))
    with stood_up(assembly, lag_seconds=lag_seconds) as env:
        for line in up_instructions(env):
            print(line, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            wait()


def up_instructions(env: EmulatedEnvironment) -> list[str]:
    regions = (env.primary_region, *env.replica_regions)
    writer = env.deployment.function(env.primary_region, "writer").name
    return [
        f"# emulated deployment up on {env.aws.endpoint_url} (account {env.deployment.account})",
        f"export AWS_ENDPOINT_URL={env.aws.endpoint_url}",
        f"export AWS_ACCESS_KEY_ID={env.aws.admin_key} AWS_SECRET_ACCESS_KEY=emulator-admin",
        f"export AWS_DEFAULT_REGION={env.primary_region} AWS_EC2_METADATA_DISABLED=true",
        f"# aws lambda invoke --function-name {writer} "
        """--payload '{"id":"p1","record":{"ssn":"1"}}' out.json""",
        "#   (AWS CLI v2: add --cli-binary-format raw-in-base64-out)",
        f"# python -m offline verify --primary {env.primary_region} --replicas {','.join(regions[1:])}",
        "# python -m offline deploy -c mrk-toolkit:<field>=...   (a changed config, applied as an update)",
        "# python -m offline destroy                             (delete the stacks; lists what stays)",
        f"# region outage runbook: python -m offline outage {env.primary_region} | recover {env.primary_region} | "
        f"promote-key --to {regions[1]}",
    ]
