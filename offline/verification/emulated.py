"""The main job offline: synthesize, stand the assembly up on the emulated AWS, verify."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from cloud_assembly.intrinsics import UnsupportedTemplate
from cloud_assembly.reader import CloudAssembly, load_assembly
from lambda_src.record_crypto.settings import (
    ENV_ALGORITHM_SUITE,
    ENV_BEACON_FIELDS,
    ENV_CACHE_MAX_AGE,
    ENV_DATA_KEY_CACHE,
    ENV_DB_SECRET_ARN,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    ENV_TENANT_KEYS,
    ENV_TENANT_ROLE_ARN,
    SQL_IDENTIFIER,
    TENANT_KEY,
    BeaconField,
    parse_beacon_fields,
)
from offline.emulator.deployment import Change, Deployment
from offline.emulator.functions import FunctionHost
from offline.emulator.provisioner import Provisioner
from offline.emulator.replication import GlobalTablesEmulator
from offline.emulator.served import ServedApis
from offline.emulator.server import ADMIN_USER, MOTO_ACCOUNT, EmulatedAws
from offline.runbooks.outage import set_outage
from offline.verification.aurora_scenario import AURORA, DYNAMODB
from offline.verification.checks import Capability, Invocation, NotApplicable, Report
from offline.verification.invariants import DeployedReader
from offline.verification.probes import KmsProbes
from offline.verification.scenario import run_main_job
from offline.verification.tenants import tenant_regions
from stacks.synthesize import synthesize

# Function settings that say which config is tested (the suite, the cache), shown in the header.
HEADER_SETTINGS = {ENV_ALGORITHM_SUITE, ENV_DATA_KEY_CACHE, ENV_CACHE_MAX_AGE, ENV_SENSITIVE_FIELDS}


EMULATOR_CAPABILITIES = frozenset(
    {
        Capability.OUTAGES,
        Capability.FUNCTION_LOGS,
        Capability.EVALUATE_ALARMS,
        Capability.ROTATE_AT_WILL,
        Capability.AUDIT_ALERTS,
        Capability.ALTER_ITEMS,
        Capability.TENANT_SESSIONS,
    }
)


@dataclass
class EmulatedEnvironment:
    """The emulator behind the one ``Environment`` interface (offline/verification/checks.py)."""

    aws: EmulatedAws
    deployment: Deployment
    host: FunctionHost
    primary_region: str
    replica_regions: tuple[str, ...]
    sensitive_fields: tuple[str, ...]
    replication: GlobalTablesEmulator | None = None
    provisioner: Provisioner | None = None
    replication_deadline_s: float = 10.0
    kms_decider: str = "the emulated KMS"
    _lifecycle_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def store(self) -> str:
        return AURORA if self.deployment.aurora is not None else DYNAMODB

    @property
    def tenant_regions(self) -> dict[str, tuple[str, ...]]:
        return tenant_regions({f.region: f.environment for f in self.deployment.functions if f.kind == "reader"})

    @property
    def capabilities(self) -> frozenset[Capability]:
        held = {Capability.HOLD_REPLICATION} if self.replication is not None else set()
        aurora = self.deployment.aurora is not None
        database = {Capability.DATABASE_SESSIONS, Capability.DATABASE_SERVERS, Capability.ROTATE_SECRETS}
        return EMULATOR_CAPABILITIES | held | (database if aurora else set())

    @property
    def beacon_fields(self) -> tuple[BeaconField, ...]:
        """The finder's BEACON_FIELDS (the same in every region); () without a finder."""
        finder = [f for f in self.deployment.functions if f.kind == "finder" and f.region == self.primary_region]
        if not finder:
            return ()
        return parse_beacon_fields(finder[0].environment.get(ENV_BEACON_FIELDS, ""), self.sensitive_fields)

    @property
    def table_name(self) -> str:
        writer = self.deployment.function(self.primary_region, "writer")
        return self.deployment.tables.get(self.primary_region) or writer.environment[ENV_TABLE_NAME]

    @property
    def function_names(self) -> dict[tuple[str, str], str]:
        kinds = ("writer", "reader", "finder")  # the finder: beacon fields only
        return {(f.region, f.kind): f.name for f in self.deployment.functions if f.kind in kinds}

    @property
    def role_arns(self) -> dict[tuple[str, str], str]:
        return {(f.region, f.kind): f.role_arn for f in self.deployment.functions}

    @property
    def stack_prefix(self) -> str:
        """The stackPrefix the templates were synthesized with (the writer's stack is <prefix>-Functions-<primary>)."""
        return self.deployment.function(self.primary_region, "writer").stack.removesuffix(
            f"-Functions-{self.primary_region}"
        )

    @property
    def reader(self) -> DeployedReader:
        return DeployedReader(
            self.aws.client, self.deployment.account, self.table_name, self.role_arns, self.stack_prefix
        )

    def invoke(self, region: str, kind: str, event: dict[str, Any]) -> Invocation:
        reply = self.host.invoke(region, kind, event)
        return Invocation(
            result=reply.get("result") or {},
            calls=reply.get("calls"),
            duration_ms=reply.get("duration_ms"),
            function_error=reply.get("function_error"),
        )

    def client(self, service: str, region: str) -> Any:
        return self.aws.client(service, region)

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
                self.replica_regions = self._deployed_replica_regions()

    def _deployed_replica_regions(self) -> tuple[str, ...]:
        """The other regions with a deployed store: a table replica, or a stack holding an Aurora cluster."""
        if self.deployment.aurora is None:
            return tuple(r for r in self.deployment.tables if r != self.primary_region)
        return tuple(
            dict.fromkeys(
                s.region
                for s in self.deployment.stacks.values()
                if s.region != self.primary_region
                and any(r.type == "AWS::RDS::DBCluster" for r in s.resources.values())
            )
        )

    @property
    def probes(self) -> KmsProbes:
        return KmsProbes(self.aws, self.deployment, self.host)

    def problems(self) -> list[tuple[str, str]]:
        if self.replication is not None and self.replication.errors:
            return [("replication emulation ran without errors", "; ".join(self.replication.errors[:3]))]
        return []

    def observed_context(self) -> dict[str, str] | None:
        """The encryption context the writers really send (seen by the emulated KMS)."""
        return self.host.seen_contexts.get("kms:GenerateDataKey")

    def tenant_session_kms(
        self, region: str, kind: str, tenant: str, kms_region: str | None = None
    ) -> tuple[Any, dict[str, str]]:
        """As the function's own role, the tenant's session of its tenant-access role (session tag
        ``tenant``), as the function takes it, with a KMS client of ``kms_region`` (default: the
        function's); and the function's region's tenant keys by tenant."""
        function = self.deployment.function(region, kind)
        sts = self.aws.role_session(function.role_arn).client("sts", region, endpoint_url=self.aws.endpoint_url)
        credentials = sts.assume_role(
            RoleArn=function.environment[ENV_TENANT_ROLE_ARN],
            RoleSessionName=f"check-{tenant}",
            Tags=[{"Key": TENANT_KEY, "Value": tenant}],
        )["Credentials"]
        kms = boto3.client(
            "kms",
            kms_region or region,
            endpoint_url=self.aws.endpoint_url,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        key_ids = json.loads(function.environment[ENV_TENANT_KEYS])
        account = self.deployment.account
        return kms, {t: f"arn:aws:kms:{region}:{account}:key/{k}" for t, k in key_ids.items() if k}

    def kms_allowed(self, region: str, kind: str, action: str, context: Mapping[str, str]) -> tuple[bool, str]:
        """Asked of the emulated KMS directly with the role's credentials (Decrypt: of a data key the
        region's writer made with the record's context)."""
        blob = self.probes.ciphertext(region, self.probes.record_context()) if action == "kms:Decrypt" else None
        return self.probes.kms_as(region, kind, action, dict(context), blob)

    def _ddb(self, region: str) -> Any:
        return self.aws.client("dynamodb", region)

    def raw_item(self, region: str, item_id: str) -> dict[str, Any] | None:
        table = self.deployment.tables[region]
        return self._ddb(region).get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True).get("Item")

    def put_raw_item(self, region: str, item: dict[str, Any]) -> None:
        self._ddb(region).put_item(TableName=self.deployment.tables[region], Item=item)

    def delete_raw_item(self, region: str, item_id: str) -> None:
        self._ddb(region).delete_item(TableName=self.deployment.tables[region], Key={"id": {"S": item_id}})

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

    # -- what only the emulator can do ----------------------------------------------------------
    def held_replication(self) -> contextlib.AbstractContextManager[None]:
        if self.replication is None:
            raise NotApplicable(Capability.HOLD_REPLICATION)
        return self.replication.held()

    def outage(self, region: str, *, down: bool, services: Iterable[str] = ()) -> None:
        """The emulator's outage switch: ``region``'s endpoints (or only ``services``) answer 503."""
        set_outage(self.aws.endpoint_url, self.aws.session.get_credentials(), region, down=down, services=services)

    def function_logs(self) -> str:
        return "\n".join(self.host.logs().values())

    def audit_deliveries(self) -> list[dict[str, Any]]:
        """What the emulated EventBridge delivered (or could not) for each matching rule."""
        return list(self.aws.gateway.trail.deliveries)

    def logs_by_region(self) -> dict[str, str]:
        return self.host.logs_by_region()

    def database(self) -> EmulatedDatabase:
        if self.deployment.aurora is None:
            raise NotApplicable(Capability.DATABASE_SESSIONS)
        return EmulatedDatabase(self)


@dataclass
class EmulatedDatabase:
    """SQL sessions on the servers of the emulated Aurora global database (offline/emulator/aurora.py):
    the master user's (here the superuser's) and the functions' database roles'."""

    env: EmulatedEnvironment

    @property
    def aurora(self) -> Any:
        return self.env.deployment.aurora

    @property
    def table(self) -> str:
        name = self.env.deployment.function(self.env.primary_region, "writer").environment[ENV_TABLE_NAME]
        assert SQL_IDENTIFIER.fullmatch(name), f"{ENV_TABLE_NAME} {name!r} is not an SQL identifier"
        return str(name)

    @property
    def name(self) -> str:
        return str(self.aurora.clusters[self.aurora.primary_region].database)

    def admin(self, statement: str, *params: Any, region: str | None = None) -> list[tuple[Any, ...]]:
        """The master user's session in the current writer's region (or ``region``)."""
        server = self.aurora.db.server(region or self.aurora.db.writer_region)
        return server.query(statement, *params, dbname=self.name)

    def replicated(self) -> None:
        """Every standby has replayed the writer's WAL so far."""
        lsn = self.aurora.db.writer_lsn()
        for region in self.aurora.db.servers:
            if region != self.aurora.db.writer_region:
                self.aurora.db.wait_replayed(region, lsn)

    def refused_to(self, region: str, kind: str, statements: tuple[str, ...]) -> tuple[str, list[str]]:
        """(the database user of the function ``kind`` of ``region``, the statements refused to it for
        lack of privilege), in a session on the writer opened with the password from its secret."""
        spec = self.env.deployment.function(region, kind)
        secrets = self.env.aws.client("secretsmanager", region)
        secret = json.loads(secrets.get_secret_value(SecretId=spec.environment[ENV_DB_SECRET_ARN])["SecretString"])
        server = self.aurora.db.server(self.aurora.db.writer_region)
        denied = []
        with server.connect(secret["username"], self.name, password=secret["password"]) as session:
            for statement in statements:
                try:
                    session.execute(statement)
                except Exception as error:  # psycopg.errors.InsufficientPrivilege: SQLSTATE 42501
                    if getattr(error, "sqlstate", None) != "42501":
                        raise
                    denied.append(statement)
        return str(secret["username"]), denied


def aurora_header(env: EmulatedEnvironment, assembly: CloudAssembly) -> list[str]:
    recorded = ", ".join(
        f"{kind.split('::', 1)[1]} x{len(ids)}" for kind, ids in sorted(env.deployment.recorded.items())
    )
    config, where = env.report_header(assembly)[:2]
    return [
        config.replace("replicas", "secondaries") + ", store=aurora-postgresql",
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
    port: int = 0,
) -> Iterator[EmulatedEnvironment]:
    """The assembly deployed on a fresh emulated AWS (on ``port``, 0: a free one) with replication
    (the global table's, or the PostgreSQL servers' streaming) and the functions running."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    with EmulatedAws(assembly_account(assembly), port=port) as aws:
        say(f"emulated AWS (moto) on {aws.endpoint_url}, account {aws.account}")
        provisioner = Provisioner(aws.session, aws.account, aws.endpoint_url, say)
        provisioner.credentials_for = aws.credentials_for
        with _database_servers_stopped_on_exit(provisioner):
            deployment = provisioner.deploy(assembly)
            if deployment.aurora is not None:
                with _aurora_environment(aws, provisioner, deployment, say, log_dir) as env:
                    yield env
                return
        with _global_table_environment(aws, provisioner, deployment, assembly, lag_seconds, say, log_dir) as env:
            yield env


@contextlib.contextmanager
def _global_table_environment(
    aws: EmulatedAws,
    provisioner: Provisioner,
    deployment: Deployment,
    assembly: CloudAssembly,
    lag_seconds: float,
    say: Callable[[str], None],
    log_dir: Path | None,
) -> Iterator[EmulatedEnvironment]:
    if not any(f.kind == "writer" for f in deployment.functions):
        raise RuntimeError("the assembly defines no writer function")
    primary = next(s.region for s in assembly.stacks.values() if s.resources("AWS::DynamoDB::GlobalTable"))
    replicas = tuple(r for r in deployment.tables if r != primary)
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
        aws,
        deployment,
        host,
        primary,
        replicas,
        _sensitive_fields(deployment, primary),
        replication=replication,
        provisioner=provisioner,
        replication_deadline_s=max(10.0, lag_seconds * 10),
    )
    aws.gateway.served = ServedApis(deployment, host, aws.gateway.state, lifecycle=env)
    try:
        host.start_all()
        say(f"started {len(deployment.functions)} functions under their own roles ({_logs_where(host, log_dir)})")
        yield env
    finally:
        replication.stop()
        host.stop()


@contextlib.contextmanager
def _aurora_environment(
    aws: EmulatedAws,
    provisioner: Provisioner,
    deployment: Deployment,
    say: Callable[[str], None],
    log_dir: Path | None,
) -> Iterator[EmulatedEnvironment]:
    """The deployed writer and reader functions of every region, running, with the servers; stack
    updates and deletions (``python -m offline deploy`` / ``destroy``) served through the provisioner."""
    aurora = deployment.aurora
    primary, secondaries = aurora.primary_region, aurora.secondary_regions
    host = FunctionHost(aws, deployment, log_dir=log_dir)
    env = EmulatedEnvironment(
        aws, deployment, host, primary, secondaries, _sensitive_fields(deployment, primary), provisioner=provisioner
    )
    aws.gateway.served = ServedApis(deployment, host, aws.gateway.state, lifecycle=env)
    try:
        for region in (primary, *secondaries):
            for kind in ("writer", "reader"):
                host.instance(region, kind).wait_ready()
        where = _logs_where(host, log_dir)
        say(f"started writers and readers in {1 + len(secondaries)} regions, under their roles ({where})")
        yield env
    finally:
        host.stop()


def _logs_where(host: FunctionHost, log_dir: Path | None) -> str:
    if log_dir is not None:
        return f"logs in {host.log_dir}"
    return f"logs in {host.log_dir}, removed at the end: --log-dir DIR keeps them"


def _sensitive_fields(deployment: Deployment, primary: str) -> tuple[str, ...]:
    return tuple(deployment.function(primary, "writer").environment.get(ENV_SENSITIVE_FIELDS, "").split(","))


@contextlib.contextmanager
def _database_servers_stopped_on_exit(provisioner: Provisioner) -> Iterator[None]:
    """The PostgreSQL servers of an Aurora deployment stop with it, even when deploying fails."""
    try:
        yield
    finally:
        for deployment in provisioner.deployments:
            if deployment.aurora is not None:
                deployment.aurora.stop()


def load(cdk_out: Path | None, context_overrides: dict[str, Any] | None, say: Callable[[str], None]) -> CloudAssembly:
    """The assembly in ``cdk_out``, or cdk.json's deployment (plus the overrides) synthesized."""
    t0 = time.monotonic()
    if cdk_out is None:
        say("synthesizing the deployment (cdk.json context, all compliance packs) ...")
        cdk_out = synthesize(context_overrides or {})
    assembly: CloudAssembly = load_assembly(cdk_out)
    say(
        f"cloud assembly {cdk_out}: {len(assembly.stacks)} stacks in {len(assembly.waves())} waves "
        f"({time.monotonic() - t0:.1f}s)"
    )
    return assembly


def run_offline(
    *,
    cdk_out: Path | None = None,
    context_overrides: dict[str, Any] | None = None,
    lag_seconds: float = 1.0,
    progress: Callable[[str], None] | None = None,
    log_dir: Path | None = None,
) -> Report:
    """The main job on the emulator: the same list of checks ``verify`` runs on an account."""
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    t0 = time.monotonic()
    assembly = load(cdk_out, context_overrides, say)
    with stood_up(assembly, lag_seconds=lag_seconds, progress=say, log_dir=log_dir) as env:
        header = aurora_header(env, assembly) if env.store == AURORA else env.report_header(assembly)
        report = run_main_job(env, header=header, progress=say)
    say(f"finished in {time.monotonic() - t0:.1f}s")
    return report


def serve(
    *,
    cdk_out: Path | None,
    context_overrides: dict[str, Any],
    lag_seconds: float,
    wait: Callable[[], None],
    port: int = 0,
    env_file: Path | None = None,
) -> None:
    """`python -m offline up`: the deployment stays up on 127.0.0.1:``port`` for ordinary clients
    until ``wait`` returns (or raises: the stand-up is undone either way). The ``export`` lines it
    prints also go to ``env_file``, for `source`."""
    assembly = load_assembly(cdk_out or synthesize(context_overrides))
    with stood_up(assembly, lag_seconds=lag_seconds, port=port) as env:
        lines = up_instructions(env)
        if env_file is not None:
            env_file.parent.mkdir(parents=True, exist_ok=True)
            env_file.write_text("".join(f"{line}\n" for line in lines if line.startswith("export ")))
            lines.insert(4, f"# the exports above are also in {env_file}: source {env_file}")
        for line in lines:
            print(line, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            wait()


def up_instructions(env: EmulatedEnvironment) -> list[str]:
    regions = (env.primary_region, *env.replica_regions)
    writer = env.deployment.function(env.primary_region, "writer").name
    keys = env.aws.admin_user_keys()  # an IAM user's, not the root user's: AWS refuses AssumeRole to root
    return [
        f"# emulated deployment up on {env.aws.endpoint_url} (account {env.deployment.account}); the keys are "
        f"IAM user {ADMIN_USER}'s (AdministratorAccess)",
        f"export AWS_ENDPOINT_URL={env.aws.endpoint_url}",
        f"export AWS_ACCESS_KEY_ID={keys['AccessKeyId']} AWS_SECRET_ACCESS_KEY={keys['SecretAccessKey']}",
        f"export AWS_DEFAULT_REGION={env.primary_region} AWS_EC2_METADATA_DISABLED=true",
        f"# aws lambda invoke --function-name {writer} "
        """--payload '{"id":"p1","record":{"ssn":"1"}}' out.json""",
        "#   (AWS CLI v2: add --cli-binary-format raw-in-base64-out)",
        *(
            [
                f"# python -m offline drill --store {AURORA}   (its failover drills)",
                f"# python -m offline deploy|destroy -c mrk-toolkit:store={AURORA} ...   (README: Add or remove a "
                "region, tear down (Aurora))",
            ]
            if env.store == AURORA
            else [
                f"# python -m offline verify --primary {env.primary_region} --replicas {','.join(regions[1:])}"
                "   (deletes what it writes; --no-tamper-checks: no alarm fires)",
                "# python -m offline deploy -c mrk-toolkit:<field>=...   (a changed config, applied as an update)",
                "# python -m offline destroy                             (delete the stacks; lists what stays)",
            ]
        ),
        f"# region outage runbook: python -m offline outage {env.primary_region} | recover {env.primary_region} | "
        f"promote-key --to {regions[1]}",
        f"# python -m offline audit --region {regions[-1]}   (who used which key, where, for which record)",
    ]
