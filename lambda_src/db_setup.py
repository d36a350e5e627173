"""Custom resource handler: the records table and the least-privilege database roles.

CloudFormation (directly, or through the CDK provider framework) calls it in the primary region
once the primary cluster is up. Create/Update: connect with the MASTER secret, create the table
and the roles ``records_writer`` / ``records_reader`` (record_crypto/pg_schema.py), set each
role's password from its own secret, grant. Delete: nothing (the data and the roles are kept;
the cluster's deletion policy decides what happens to them).

Environment: DB_HOST, DB_PORT, DB_NAME, DB_MASTER_SECRET_ARN, DB_WRITER_SECRET_ARN,
DB_READER_SECRET_ARN, RECORDS_TABLE_NAME (AWS_REGION from the runtime). Returns
``{"PhysicalResourceId", "Data": {"Table", "WriterRole", "ReaderRole"}}`` (the provider
framework's contract); when invoked by CloudFormation directly (an https ResponseURL in the
event) it also sends that response itself. Never logs a password.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Mapping
from typing import Any

import botocore.session
from record_crypto.pg_schema import (
    READER_ROLE,
    SSL_MODE,
    WRITER_ROLE,
    beacon_statements,
    password_statement,
    schema_statements,
)
from record_crypto.settings import (
    DB_SETUP_REQUIRED_ENV_VARS,
    ENV_BEACON_FIELDS,
    ENV_DB_HOST,
    ENV_DB_MASTER_SECRET_ARN,
    ENV_DB_NAME,
    ENV_DB_PORT,
    ENV_DB_READER_SECRET_ARN,
    ENV_DB_WRITER_SECRET_ARN,
    ENV_REGION,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    OPTIONAL_ENV_VARS,
    SQL_IDENTIFIER,
    SQL_IDENTIFIER_RULE,
    parse_beacon_fields,
)

LOG = logging.getLogger("db_setup")
REQUIRED = DB_SETUP_REQUIRED_ENV_VARS


class SetupError(Exception):
    """The setup cannot run: names what is wrong."""


def _environment(environ: Mapping[str, str]) -> dict[str, str]:
    missing = [name for name in REQUIRED if not environ.get(name)]
    if missing:
        raise SetupError(f"db_setup: missing environment variable(s) {missing}")
    for name in (ENV_DB_NAME, ENV_TABLE_NAME):
        if not SQL_IDENTIFIER.match(environ[name]):
            raise SetupError(f"db_setup: {name}={environ[name]!r} must be {SQL_IDENTIFIER_RULE}")
    optional = (ENV_DB_PORT, ENV_REGION, ENV_SENSITIVE_FIELDS, ENV_BEACON_FIELDS)
    return {name: environ[name] for name in (*REQUIRED, *optional) if environ.get(name)}


def _secret(client: Any, arn: str) -> dict[str, str]:
    value = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    return {"username": str(value["username"]), "password": str(value["password"])}


def setup(environ: Mapping[str, str], session: botocore.session.Session | None = None) -> dict[str, str]:
    """Create or update the table, the roles and the grants; returns what was set up."""
    import psycopg

    env = _environment(environ)
    secrets = (session or botocore.session.get_session()).create_client(
        "secretsmanager", region_name=env.get(ENV_REGION)
    )
    master = _secret(secrets, env[ENV_DB_MASTER_SECRET_ARN])
    roles = {
        WRITER_ROLE: _secret(secrets, env[ENV_DB_WRITER_SECRET_ARN]),
        READER_ROLE: _secret(secrets, env[ENV_DB_READER_SECRET_ARN]),
    }
    for role, secret in roles.items():
        if secret["username"] != role:
            raise SetupError(f"db_setup: the secret for the role {role} names the user {secret['username']!r}")
    table = env[ENV_TABLE_NAME]
    sensitive = tuple(f.strip() for f in env.get(ENV_SENSITIVE_FIELDS, "").split(",") if f.strip())
    beacons = parse_beacon_fields(env.get(ENV_BEACON_FIELDS, ""), sensitive)  # README "Beacons"
    with (
        psycopg.connect(
            host=env[ENV_DB_HOST],
            port=int(env.get(ENV_DB_PORT, OPTIONAL_ENV_VARS[ENV_DB_PORT])),
            dbname=env[ENV_DB_NAME],
            user=master["username"],
            password=master["password"],
            connect_timeout=10,
            sslmode=SSL_MODE,
        ) as conn,
        conn.transaction(),
    ):
        for statement in [*schema_statements(table, database=env[ENV_DB_NAME]), *beacon_statements(table, beacons)]:
            conn.execute(statement)
        for role, secret in roles.items():
            conn.execute(password_statement(role, secret["password"]))
    LOG.info("db_setup: table %s, roles %s and %s ready", table, WRITER_ROLE, READER_ROLE)
    return {"Table": table, "WriterRole": WRITER_ROLE, "ReaderRole": READER_ROLE}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = event.get("RequestType")
    physical = event.get("PhysicalResourceId") or f"mrk-toolkit-db-setup-{os.environ.get(ENV_TABLE_NAME, '')}"
    status, reason, data = "SUCCESS", "", {}
    try:
        if request in ("Create", "Update"):
            data = setup(os.environ)
        elif request != "Delete":
            raise SetupError(f"db_setup: unknown RequestType {request!r}")
    except Exception as error:  # reported to CloudFormation, without secrets
        status, reason = "FAILED", f"{type(error).__name__}: {str(error)[:300]}"
        LOG.error("db_setup failed: %s", reason)
        if not str(event.get("ResponseURL", "")).startswith("https://"):
            raise
    response = {"PhysicalResourceId": physical, "Data": data}
    url = str(event.get("ResponseURL", ""))
    if url.startswith("https://"):
        _send(url, event, context, status, reason, response)
    return response


def _send(url: str, event: dict[str, Any], context: Any, status: str, reason: str, response: dict[str, Any]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or f"see log stream {getattr(context, 'log_stream_name', '')}",
            "PhysicalResourceId": response["PhysicalResourceId"],
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
            "Data": response["Data"],
        }
    ).encode()
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 (the https URL CloudFormation gave)
        reply.read()
