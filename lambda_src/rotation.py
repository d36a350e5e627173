"""Secrets Manager rotation function: single-user rotation of a PostgreSQL role's password.

Secrets Manager invokes it four times per rotation with ``{"SecretId", "ClientRequestToken", "Step"}``
(AWS's ``SecretsManagerRDSPostgreSQLRotationSingleUser`` template, same steps, same checks):

* ``createSecret``: an AWSPENDING version (the token) with a new password, unless it exists already;
* ``setSecret``: log in as the secret's user with the pending password (already set: done), else with
  the current one, else with the previous one, and change the role's own password to the pending one;
* ``testSecret``: log in with the pending password;
* ``finishSecret``: move AWSCURRENT to the pending version (AWSPREVIOUS follows the old one).

Each step is idempotent (Secrets Manager retries a failed step), and every step first checks that
rotation is enabled and the token is a version staged AWSPENDING (or already AWSCURRENT: nothing to
do). The secret carries what the login needs: ``username``, ``password``, ``host``, ``port``,
``dbname``, ``engine`` (``postgres``). The password is made here with ``secrets`` (no
``secretsmanager:GetRandomPassword``, an action on ``*``), alphanumeric like the generated ones.
Never logs a password.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from record_crypto.pg_schema import SSL_MODE

LOG = logging.getLogger("rotation")
CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
REQUIRED_FIELDS = ("username", "password", "host", "engine")
ENGINE = "postgres"
PASSWORD_LENGTH = 40  # as the secrets are generated (cdk_constructs/database_secrets.py)
_ALPHABET = string.ascii_letters + string.digits


class RotationError(Exception):
    """The rotation cannot go on: names what is wrong (never a password)."""


def _client() -> Any:
    return botocore.session.get_session().create_client("secretsmanager")


def handler(event: dict[str, Any], context: Any, client: Any = None) -> None:
    arn, token, step = event.get("SecretId"), event.get("ClientRequestToken"), event.get("Step")
    if not arn or not token or step not in STEPS:
        raise RotationError(f"rotation: expected SecretId, ClientRequestToken and Step in {STEPS}")
    client = client or _client()
    metadata = client.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"rotation: secret {arn} is not enabled for rotation")
    versions = metadata.get("VersionIdsToStages", {})
    if token not in versions:
        raise RotationError(f"rotation: secret version {token} has no stage for rotation of secret {arn}")
    if CURRENT in versions[token]:
        LOG.info("rotation: secret version %s already set as AWSCURRENT for secret %s", token, arn)
        return
    if PENDING not in versions[token]:
        raise RotationError(f"rotation: secret version {token} not set as AWSPENDING for rotation of secret {arn}")
    {"createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret}.get(step, finish_secret)(
        client, arn, token
    )


def create_secret(client: Any, arn: str, token: str) -> None:
    current = _value(client, arn, CURRENT)
    try:
        _value(client, arn, PENDING, token)
        LOG.info("rotation createSecret: the pending version exists for %s", arn)
        return
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
    pending = {**current, "password": "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))}
    client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=[PENDING]
    )
    LOG.info("rotation createSecret: put a new pending version %s of %s", token, arn)


def set_secret(client: Any, arn: str, token: str) -> None:
    pending = _value(client, arn, PENDING, token)
    current = _value(client, arn, CURRENT)
    for name, value in (("current", current), ("pending", pending)):
        if value["username"] != current["username"] or value["host"] != current["host"]:
            raise RotationError(f"rotation setSecret: the {name} version of {arn} names another user or host")
    conn = _connect(pending)
    if conn is not None:  # already set (a retried step)
        conn.close()
        LOG.info("rotation setSecret: the pending password already logs in for %s", arn)
        return
    conn = _connect(current) or _previous_login(client, arn)
    if conn is None:
        raise RotationError(f"rotation setSecret: neither the current nor the previous password of {arn} logs in")
    from psycopg import sql

    with conn:
        conn.execute(
            sql.SQL("ALTER USER {} WITH PASSWORD {}").format(
                sql.Identifier(pending["username"]), sql.Literal(pending["password"])
            )
        )
    LOG.info("rotation setSecret: the password of %s is set for %s", pending["username"], arn)


def test_secret(client: Any, arn: str, token: str) -> None:
    conn = _connect(_value(client, arn, PENDING, token))
    if conn is None:
        raise RotationError(f"rotation testSecret: the pending password of {arn} does not log in")
    with conn:
        conn.execute("SELECT now()")
    LOG.info("rotation testSecret: the pending password logs in for %s", arn)


def finish_secret(client: Any, arn: str, token: str) -> None:
    versions = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next((v for v, stages in versions.items() if CURRENT in stages), None)
    if current == token:
        LOG.info("rotation finishSecret: version %s already AWSCURRENT for %s", token, arn)
        return
    client.update_secret_version_stage(
        SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )
    LOG.info("rotation finishSecret: version %s is AWSCURRENT for %s", token, arn)


def _previous_login(client: Any, arn: str) -> Any:
    try:
        return _connect(_value(client, arn, PREVIOUS))
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            return None
        raise


def _value(client: Any, arn: str, stage: str, token: str | None = None) -> dict[str, Any]:
    """The secret's JSON at ``stage`` (and version ``token``), checked for what a login needs."""
    kwargs = {"VersionId": token} if token else {}
    value = json.loads(client.get_secret_value(SecretId=arn, VersionStage=stage, **kwargs)["SecretString"])
    missing = [f for f in REQUIRED_FIELDS if f not in value]
    if missing:
        raise RotationError(f"rotation: the {stage} version of {arn} lacks {missing}")
    if value["engine"] != ENGINE:
        raise RotationError(f"rotation: {arn} is for engine {value['engine']!r}, this function rotates {ENGINE!r}")
    return dict(value)


def _connect(value: dict[str, Any]) -> Any:
    """A connection as the secret's user, or None when the server refuses its password."""
    import psycopg

    try:
        return psycopg.connect(
            host=value["host"],
            port=int(value.get("port", 5432)),
            dbname=value.get("dbname", "postgres"),
            user=value["username"],
            password=value["password"],
            connect_timeout=5,
            sslmode=SSL_MODE,
        )
    except psycopg.OperationalError:
        return None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
