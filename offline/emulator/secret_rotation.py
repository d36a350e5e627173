"""EMULATION of Secrets Manager's rotation: ``AWS::SecretsManager::RotationSchedule``, the
function permissions Secrets Manager needs (``AWS::Lambda::Permission``), and ``RotateSecret``.

* A RotationSchedule sets the secret's rotation (RotationEnabled, RotationLambdaARN, RotationRules:
  ``AutomaticallyAfterDays`` 1-1000, as Secrets Manager validates it) and, with
  ``RotateImmediatelyOnUpdate`` (AWS's default: true), rotates at once.
* ``RotateSecret`` (and a schedule's first rotation) does what Secrets Manager does: refuses a replica, a
  secret with no rotation function, and a rotation while another is in progress (a version staged
  AWSPENDING that is not AWSCURRENT: "A previous rotation isn't complete"); stages AWSPENDING on a new
  version id with no value (the token); then invokes the rotation function, as
  ``secretsmanager.amazonaws.com``, with ``{SecretId, ClientRequestToken, Step}`` for createSecret,
  setSecret, testSecret, finishSecret. The function's resource policy must let Secrets Manager invoke it
  for this secret (principal, ``AWS:SourceArn``, ``AWS:SourceAccount``), as Lambda decides for AWS.
  A step that fails makes the rotation run again from createSecret with the same token (Secrets
  Manager retries a failed rotation; the steps are idempotent), ``ATTEMPTS`` times in all; then it
  stops with AWSPENDING left staged (the next RotateSecret is refused until an operator clears it)
  and the caller is told which step failed.

The steps run synchronously (Secrets Manager invokes them asynchronously and answers RotateSecret at
once): a caller sees the rotation done, or why not.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from policy_engine import Caller, Request, authorize

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
PRINCIPAL = "secretsmanager.amazonaws.com"
CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
# Secrets Manager retries a rotation whose step failed, from createSecret with the same token (each step
# is idempotent); here at once, this many times in all.
ATTEMPTS = 3


class RotationRefused(Exception):
    """What Secrets Manager answers instead of rotating: ``code`` (its error code) and the message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Rotation:
    arn: str
    name: str
    version_id: str
    steps: tuple[str, ...]  # the steps that ran, in order (a failed one named so, then the retry)


def _secret(account: str, region: str, secret_id: str) -> Any:
    from moto.secretsmanager.models import ReplicaSecret, secretsmanager_backends

    backend = secretsmanager_backends[account][region]
    found = backend.secrets.get(secret_id) if backend._is_valid_identifier(secret_id) else None
    if found is None:
        raise RotationRefused("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
    if isinstance(found, ReplicaSecret):
        raise RotationRefused(
            "InvalidRequestException", f"Operation not permitted on a replica secret: rotate {found.source.arn}"
        )
    return found


def schedule(account: str, region: str, secret_id: str, lambda_arn: str, rules: dict[str, Any]) -> str:
    """A RotationSchedule: the secret's rotation enabled with this function and rule; its ARN."""
    days = rules.get("AutomaticallyAfterDays")
    if rules.get("ScheduleExpression") or rules.get("Duration"):
        raise RotationRefused("InvalidParameterException", "only RotationRules.AutomaticallyAfterDays is emulated")
    if not isinstance(days, int) or not 1 <= days <= 1000:
        raise RotationRefused(
            "InvalidParameterException", f"RotationRules.AutomaticallyAfterDays must be within 1-1000, got {days!r}"
        )
    if not lambda_arn.startswith(f"arn:aws:lambda:{region}:{account}:function:"):
        raise RotationRefused("InvalidParameterException", f"RotationLambdaARN {lambda_arn} is not a function here")
    secret = _secret(account, region, secret_id)
    secret.rotation_requested = True
    secret.rotation_enabled = True
    secret.rotation_lambda_arn = lambda_arn
    secret.auto_rotate_after_days = days
    secret.next_rotation_date = int(time.time()) + days * 86400
    return str(secret.arn)


def unschedule(account: str, region: str, secret_id: str) -> None:
    """The RotationSchedule deleted: CancelRotateSecret."""
    try:
        secret = _secret(account, region, secret_id)
    except RotationRefused:
        return
    secret.rotation_enabled = False
    secret.rotation_lambda_arn = ""


def _run_steps(
    invoke: Callable[[str, dict[str, Any]], dict[str, Any]],
    function_arn: str,
    secret_arn: str,
    version: str,
    done: list[str],
) -> str | None:
    """The four steps once, in order, each recorded in ``done``; the step that failed, or None."""
    for step in STEPS:
        reply = invoke(function_arn, {"SecretId": secret_arn, "ClientRequestToken": version, "Step": step})
        done.append(step if not reply.get("function_error") else f"{step} failed ({reply.get('error_type')})")
        if reply.get("function_error"):
            return f"{step} ({reply.get('error_type')})"
    return None


def may_invoke(policies: Iterable[dict[str, Any]], function_arn: str, secret_arn: str, account: str) -> bool:
    """Lambda's decision on Secrets Manager invoking ``function_arn`` for ``secret_arn``."""
    caller = Caller(account=account, service=PRINCIPAL)
    context = {"aws:SourceArn": secret_arn, "aws:SourceAccount": account}
    request = Request(caller, "lambda:InvokeFunction", function_arn, context)
    documents = [(f"function policy of {function_arn}", p) for p in policies]
    return any(authorize(request, resource_policy=d, identity_policies=[]).allowed for d in documents)


def rotate(
    account: str,
    region: str,
    secret_id: str,
    *,
    token: str | None,
    function_policies: Callable[[str], list[dict[str, Any]]],
    invoke: Callable[[str, dict[str, Any]], dict[str, Any]],
) -> Rotation:
    """One rotation, as Secrets Manager runs it; ``invoke(function_arn, event)`` -> the host's reply."""
    secret = _secret(account, region, secret_id)
    function_arn = getattr(secret, "rotation_lambda_arn", "") or ""
    if not function_arn:
        raise RotationRefused(
            "InvalidRequestException", "No Lambda rotation function ARN is associated with this secret."
        )
    stages = {v: list(d["version_stages"]) for v, d in secret.versions.items()}
    if any(PENDING in s and CURRENT not in s for s in stages.values()):
        raise RotationRefused(
            "InvalidRequestException", "A previous rotation isn't complete. That rotation will be reattempted."
        )
    if not may_invoke(function_policies(function_arn), function_arn, str(secret.arn), account):
        raise RotationRefused(
            "AccessDeniedException",
            f"Secrets Manager cannot invoke the specified Lambda function {function_arn}. Ensure that the function "
            f"policy grants access to the principal {PRINCIPAL}.",
        )
    version = token or str(uuid.uuid4())
    if version in secret.versions:
        raise RotationRefused("InvalidRequestException", f"version {version} of the secret exists already")
    secret.remove_version_stages_from_old_versions([PENDING])
    secret.versions[version] = {"createdate": int(time.time()), "version_id": version, "version_stages": [PENDING]}
    done: list[str] = []
    for attempt in range(1, ATTEMPTS + 1):
        failed = _run_steps(invoke, function_arn, str(secret.arn), version, done)
        if failed is None:
            break
        if attempt == ATTEMPTS:
            raise RotationRefused(
                "InternalServiceError",
                f"the rotation function failed at {failed} {ATTEMPTS} times; AWSPENDING stays on version {version}",
            )
    secret.last_rotation_date = int(time.time())
    secret.next_rotation_date = secret.last_rotation_date + int(secret.auto_rotate_after_days or 0) * 86400
    return Rotation(arn=str(secret.arn), name=str(secret.name), version_id=version, steps=tuple(done))


__all__ = ["STEPS", "Rotation", "RotationRefused", "may_invoke", "rotate", "schedule", "unschedule"]
