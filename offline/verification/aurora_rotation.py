"""The Aurora store's secret rotation, read back and exercised through the AWS APIs (the same code on
the emulated AWS and on an account; README "Secret rotation"):

* every secret the primary region's stacks deploy has a RotationSchedule, and Secrets Manager
  reports it: RotationEnabled, the rule (every N days), the deployed rotation function;
* the writer's secret rotated on demand (RotateSecret: the rotation function's four steps), then the
  deployed writer writes and every region's reader reads: the functions pick up the new password.
"""

from __future__ import annotations

import time
from typing import Any

from lambda_src.record_crypto.settings import WRITER_ROLE
from offline.verification.basics import Run, failure, read_until_replicated, write
from offline.verification.checks import Capability, Check, Environment, check
from offline.verification.resources import deployed_stack_resources

ROTATION_DEADLINE_S = 180.0  # Secrets Manager runs the steps asynchronously on AWS


def rotation_checks(run: Run, env: Environment) -> list[Check]:
    return [
        check(f"deployed: every database secret in {env.primary_region} rotates on a schedule", _scheduled),
        check(
            "the writer's secret rotates on demand and the functions keep working",
            lambda e: _rotated(run, e),
            Capability.ROTATE_SECRETS,
        ),
    ]


def _schedules(env: Environment) -> tuple[list[str], list[str], set[str]]:
    """(the primary's secrets, the secrets its RotationSchedules name, its functions' names)."""
    resources = [r for _, r in deployed_stack_resources(env.client, env.reader.stack_prefix, env.primary_region)]
    secrets = sorted(r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::SecretsManager::Secret")
    scheduled = sorted(
        r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::SecretsManager::RotationSchedule"
    )
    functions = {r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::Lambda::Function"}
    return secrets, scheduled, functions


def _scheduled(env: Environment) -> str:
    secrets, scheduled, functions = _schedules(env)
    assert secrets, f"no secret is deployed in {env.primary_region}"
    assert scheduled == secrets, f"secrets without a RotationSchedule: {sorted(set(secrets) - set(scheduled))}"
    manager = env.client("secretsmanager", env.primary_region)
    rules = set()
    for arn in secrets:
        described = manager.describe_secret(SecretId=arn)
        assert described.get("RotationEnabled") is True, f"{described['Name']}: rotation is not enabled"
        function = str(described.get("RotationLambdaARN", ""))
        assert function.rsplit(":", 1)[-1] in functions, f"{described['Name']}: rotated by {function!r}, not ours"
        rules_read = described.get("RotationRules", {})
        rule = rules_read.get("AutomaticallyAfterDays")
        assert isinstance(rule, int) and rule >= 1, f"{described['Name']}: rotation rule {rules_read}"
        rules.add(rule)
    return f"{len(secrets)} secrets, rotation enabled, every {'/'.join(map(str, sorted(rules)))} days, by our function"


def _writer_secret(env: Environment) -> str:
    secrets, _, _ = _schedules(env)
    manager = env.client("secretsmanager", env.primary_region)
    named = [a for a in secrets if manager.describe_secret(SecretId=a)["Name"].endswith(f"/{WRITER_ROLE}")]
    assert len(named) == 1, f"{len(named)} secrets for {WRITER_ROLE}"
    return named[0]


def _current(manager: Any, arn: str) -> str:
    stages = manager.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return next(v for v, s in stages.items() if "AWSCURRENT" in s)


def _rotated(run: Run, env: Environment) -> str:
    manager = env.client("secretsmanager", env.primary_region)
    arn = _writer_secret(env)
    before = _current(manager, arn)
    version = manager.rotate_secret(SecretId=arn)["VersionId"]
    deadline = time.monotonic() + ROTATION_DEADLINE_S
    while _current(manager, arn) != version:
        assert time.monotonic() < deadline, f"version {version} not AWSCURRENT within {ROTATION_DEADLINE_S:.0f}s"
        time.sleep(1.0)
    assert version != before
    item_id, _, _ = write(run, env, "after-rotation")
    for region in (env.primary_region, *env.replica_regions):
        inv = read_until_replicated(env, region, item_id)
        assert inv.result.get("ok") is True, failure(f"reader in {region}", inv)
    regions = ", ".join((env.primary_region, *env.replica_regions))
    return f"version {version[:8]} AWSCURRENT (was {before[:8]}); written after it, read in {regions}"
