"""The main job for the Aurora PostgreSQL store: the deployed functions (real handlers, under
their roles, through the emulated IAM) against real PostgreSQL servers, one per region, the
primary streaming to the others (offline/emulator/aurora.py).

Checks: the schema and roles db_setup made; write in the primary; read and decrypt in every
secondary with its replica key; only ciphertext at rest; the secondary refusing a direct write;
the table-writer attacks (planted, changed, rolled back) made in the primary by the master user
and refused by each secondary's reader; the database roles' privileges; the cross-role denials;
a malformed event; clean logs; then the extra checks (the resource policies and encryption at rest
of every deployed resource, offline/verification/resources.py).
"""

# The SQL below names the table the templates name, checked to be a plain SQL identifier first.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from lambda_src.record_crypto.settings import (
    ENV_DB_PRIMARY_REGION,
    ENV_DB_SECRET_ARN,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    READER_ROLE,
    SQL_IDENTIFIER,
    WRITER_ROLE,
)
from offline.verification.scenario import Verification


class AuroraVerification(Verification):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        regions = ", ".join(self.env.replica_regions)
        self.report.title = f"Aurora PostgreSQL store: write in {self.env.primary_region}, read in {regions}"

    @property
    def aurora(self) -> Any:
        return self.env.deployment.aurora  # type: ignore[attr-defined]

    @property
    def table(self) -> str:
        writer = self.env.deployment.function(self.env.primary_region, "writer")  # type: ignore[attr-defined]
        name = writer.environment[ENV_TABLE_NAME]
        assert SQL_IDENTIFIER.fullmatch(name), f"{ENV_TABLE_NAME} {name!r} is not an SQL identifier"
        return str(name)

    def admin(self, statement: str, *params: Any, region: str | None = None) -> list[tuple[Any, ...]]:
        """The master user's (here: the superuser's) session in the primary (or ``region``)."""
        database = self.aurora.clusters[self.aurora.primary_region].database
        server = self.aurora.db.server(region or self.aurora.db.writer_region)
        return server.query(statement, *params, dbname=database)

    def replicated(self) -> None:
        lsn = self.aurora.db.writer_lsn()
        for region in self.env.replica_regions:
            self.aurora.db.wait_replayed(region, lsn)

    def run(self) -> Any:
        env = self.env
        state: dict[str, Any] = {}
        self._check(f"db_setup made the table and least-privilege roles in {env.primary_region}", self._schema)
        if not self._written_and_read_everywhere(state, "cluster"):
            return self.report
        for region in env.replica_regions:
            self._check(f"the writer in {region} is refused a direct write", partial(self._read_only, region))
            self._attacks(region)
            self._check(f"the reader's role in {region} cannot write", partial(self._reader_cannot_write, region))
            self._check(
                f"the writer's role in {region} cannot decrypt", partial(self._writer_cannot_decrypt, region, state)
            )
        self._check(f"the reader's database role cannot write ({env.primary_region})", self._reader_role_sql)
        self._check("a malformed event gets a 4xx error and no AWS call", self._invalid_event)
        logs = env.function_logs()
        if logs is not None:
            self._check("function logs hold no plaintext", partial(self._clean_logs, logs))
        for name, check in self.extra_checks():
            self._check(name, check)
        return self.report

    # -- checks ---------------------------------------------------------------------------------
    def _schema(self) -> str:
        t = self.table
        asked = [
            ("table", WRITER_ROLE, "INSERT"),
            ("table", WRITER_ROLE, "UPDATE"),
            ("table", WRITER_ROLE, "DELETE"),
            ("table", WRITER_ROLE, "TRUNCATE"),
            ("version", WRITER_ROLE, "SELECT"),
            ("ciphertext", WRITER_ROLE, "SELECT"),
            ("table", READER_ROLE, "SELECT"),
            ("table", READER_ROLE, "INSERT"),
            ("table", READER_ROLE, "UPDATE"),
            ("table", READER_ROLE, "DELETE"),
        ]
        got = tuple(
            self.admin("SELECT has_table_privilege(%s, %s, %s)", role, t, privilege)[0][0]
            if what == "table"
            else self.admin("SELECT has_column_privilege(%s, %s, %s, %s)", role, t, what, privilege)[0][0]
            for what, role, privilege in asked
        )
        expected = (True, True, False, False, True, False, True, False, False, False)
        assert got == expected, f"privileges {got}, expected {expected}"
        owner = self.admin("SELECT tableowner FROM pg_tables WHERE tablename = %s", t)
        assert owner and owner[0][0] not in (WRITER_ROLE, READER_ROLE), f"the table is owned by {owner}"
        return (
            f"table {t} owned by {owner[0][0]}; {WRITER_ROLE}: INSERT, UPDATE, SELECT(id, version) only; "
            f"{READER_ROLE}: SELECT only"
        )

    def _at_rest(self, region: str, state: dict[str, Any]) -> str:
        rows = self.admin(
            f"SELECT attributes, ciphertext FROM {self.table} WHERE id = %s", state["item_id"], region=region
        )
        assert rows, f"row missing in {region}"
        attributes, ciphertext = rows[0]
        self._no_plaintext(attributes, state["record"])
        assert not set(attributes) & set(self.env.sensitive_fields), "a sensitive field in plaintext"
        assert {"name", "country"} <= set(attributes), "non-sensitive attributes should stay queryable"
        return f"sensitive fields only inside the bytea 'ciphertext' ({len(ciphertext)} bytes); attributes queryable"

    def _read_only(self, region: str) -> str:
        item_id = self._item_id(f"direct-{region}")
        inv = self.invoker.invoke(region, "writer", {"id": item_id, "record": self.sample_record("d")})
        error = inv.result.get("error", {})
        assert error.get("type") == "ReadOnlyRegion", f"got {json.dumps(inv.result)[:240]}"
        named = self.env.deployment.function(region, "writer").environment.get(ENV_DB_PRIMARY_REGION)  # type: ignore[attr-defined]
        if named:
            assert f"primary region {self.env.primary_region}" in error["message"], error["message"]
        assert not self.admin(f"SELECT 1 FROM {self.table} WHERE id = %s", item_id), "the row was written"
        return f"ReadOnlyRegion ({error['status']}): {error['message'][:90]}..."

    def _attacks(self, region: str) -> None:
        from offline.verification.integrity import written_once

        state: dict[str, Any] = {}
        written = partial(written_once, self, region, state)

        def refused(event: dict[str, Any], expected: str, record: dict[str, Any]) -> str:
            inv = self.invoker.invoke(region, "reader", event)
            assert self._error_type(inv) == expected, f"expected {expected}, got {json.dumps(inv.result)[:240]}"
            self._no_plaintext(inv.result, record)
            return str(inv.result["error"]["message"])

        def altered(statement: str, item_id: str) -> Callable[[], None]:
            saved = self.admin(f"SELECT attributes::text, writer_region FROM {self.table} WHERE id = %s", item_id)[0]
            self.admin(statement, item_id)
            self.replicated()

            def restore() -> None:
                self.admin(
                    f"UPDATE {self.table} SET attributes = %s::jsonb, writer_region = %s WHERE id = %s", *saved, item_id
                )
                self.replicated()

            return restore

        planted = self.env.sensitive_fields[0]

        def planted_value() -> str:
            item_id, record = written()
            restore = altered(
                f'UPDATE {self.table} SET attributes = attributes || \'{{"{planted}": "planted"}}\' WHERE id = %s',
                item_id,
            )
            try:
                message = refused({"id": item_id}, "TamperedRecord", record)
            finally:
                restore()
            return f"a plaintext '{planted}' in the attributes is refused (TamperedRecord: {message[:60]}...)"

        def changed() -> str:
            item_id, record = written()
            restore = altered(
                f'UPDATE {self.table} SET attributes = attributes || \'{{"name": "Mallory", "role": "admin"}}\' '
                "WHERE id = %s",
                item_id,
            )
            try:
                refused({"id": item_id}, "TamperedRecord", record)
            finally:
                restore()
            return "'name' changed and 'role: admin' added by the master user: refused with TamperedRecord"

        def rolled_back() -> str:
            item_id, record = written()
            columns = "attributes::text, ciphertext, version, schema, writer_region, written_at"
            saved = self.admin(f"SELECT {columns} FROM {self.table} WHERE id = %s", item_id)[0]
            newer = self.invoker.invoke(self.env.primary_region, "writer", {"id": item_id, "record": record})
            assert newer.result.get("ok") is True, self._failure("writer", newer)
            current = newer.result["version"]
            self.admin(
                f"UPDATE {self.table} SET attributes = %s::jsonb, ciphertext = %s, version = %s, schema = %s, "
                "writer_region = %s, written_at = %s WHERE id = %s",
                *saved,
                item_id,
            )
            self.replicated()
            message = refused({"id": item_id, "min_version": current}, "StaleRecord", record)
            return f"version {saved[2]} restored over {current}: StaleRecord with min_version ({message[:50]}...)"

        self._check(f"planted sensitive value in {region} is refused", planted_value)
        self._check(f"changed plaintext attribute in {region} is refused", changed)
        self._check(f"rolled-back row in {region} is refused with min_version", rolled_back)

    def _reader_role_sql(self) -> str:
        import psycopg

        secret = self._role_secret(self.env.primary_region, "reader")
        server = self.aurora.db.server(self.aurora.db.writer_region)
        database = self.aurora.clusters[self.aurora.primary_region].database
        denied = []
        with psycopg.connect(server.conninfo(secret["username"], database, secret["password"]), autocommit=True) as c:
            for statement in (f"DELETE FROM {self.table}", f"UPDATE {self.table} SET version = version + 1"):
                try:
                    c.execute(statement)
                except psycopg.errors.InsufficientPrivilege:
                    denied.append(statement.split()[0])
        assert denied == ["DELETE", "UPDATE"], f"the reader's role could run {denied}"
        return f"{secret['username']} (password from its secret) is refused DELETE and UPDATE: permission denied"

    def _role_secret(self, region: str, kind: str) -> dict[str, str]:
        spec = self.env.deployment.function(region, kind)  # type: ignore[attr-defined]
        client = self.env.aws.client("secretsmanager", region)  # type: ignore[attr-defined]
        return json.loads(client.get_secret_value(SecretId=spec.environment[ENV_DB_SECRET_ARN])["SecretString"])


@contextlib.contextmanager
def aurora_environment(aws: Any, deployment: Any, say: Callable[[str], None], log_dir: Path | None) -> Iterator[Any]:
    """The deployed writer and reader functions of every region, running, with the servers."""
    from offline.emulator.functions import FunctionHost
    from offline.emulator.served import ServedApis
    from offline.verification.emulated import EmulatedEnvironment

    aurora = deployment.aurora
    primary, secondaries = aurora.primary_region, aurora.secondary_regions
    sensitive = tuple(deployment.function(primary, "writer").environment.get(ENV_SENSITIVE_FIELDS, "").split(","))
    host = FunctionHost(aws, deployment, log_dir=log_dir)
    aws.gateway.served = ServedApis(deployment, host, aws.gateway.state)  # the stacks, read back
    try:
        for region in (primary, *secondaries):
            for kind in ("writer", "reader"):
                host.instance(region, kind).wait_ready()
        say(f"started writers and readers in {1 + len(secondaries)} regions, under their roles (logs: {host.log_dir})")
        yield EmulatedEnvironment(
            aws, deployment, host, primary, secondaries, sensitive, controls_replication_lag=False
        )
    finally:
        host.stop()
