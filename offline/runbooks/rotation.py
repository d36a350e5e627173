"""Key rotation: on-demand rotation of the multi-region key, and the main job's check of it.

KMS rotates a multi-region key on its **primary** only; every replica takes the new material
with it (one key id, one material history), and ciphertext made before a rotation still
decrypts. ``rotate`` is the operator's command (a real account, or ``python -m offline up``);
``rotation_check`` proves on the emulator that records written before and after a rotation
decrypt in every region (the emulator rotates material for real: offline/emulator/moto_patches.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lambda_src.record_crypto.settings import ENV_MRK_ARN
from offline.verification.scenario import read_until_replicated

if TYPE_CHECKING:
    from offline.verification.emulated import EmulatedEnvironment

KEY_OUTPUT = "RecordsKeyArn"


def primary_key_arn(cloudformation: Any, stack_prefix: str, primary_region: str) -> str:
    """The MRK primary's ARN, from the primary region's keys stack output."""
    stack = f"{stack_prefix}-Keys-{primary_region}"
    outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        if output["OutputKey"].startswith(KEY_OUTPUT):
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack} has no {KEY_OUTPUT} output: is it the toolkit's keys stack?")


def rotate(kms: Any, key_arn: str) -> str:
    """RotateKeyOnDemand on the primary; returns one line saying what happened."""
    kms.rotate_key_on_demand(KeyId=key_arn)
    rotations = kms.list_key_rotations(KeyId=key_arn).get("Rotations", [])
    return (
        f"rotated {key_arn} on demand ({len(rotations)} rotation(s) so far); its replicas follow, "
        "and records written before still decrypt"
    )


def rotation_check(env: EmulatedEnvironment, *, deadline_s: float = 30.0) -> tuple[str, Callable[[], str]]:
    def check() -> str:
        from offline.verification.emulated import EmulatorInvoker  # emulated imports this module

        primary = env.primary_region
        key_arn = env.deployment.function(primary, "writer").environment[ENV_MRK_ARN]
        tag = uuid.uuid4().hex[:8]
        record = {"name": "rotation", **{f: f"SECRET-{f}-{tag}-rotation" for f in env.sensitive_fields}}
        before = _write(env, f"rotation-{tag}-before", record)
        done = rotate(env.aws.client("kms", primary), key_arn)
        after = _write(env, f"rotation-{tag}-after", record)
        invoker = EmulatorInvoker(env.host)
        for region in env.replica_regions:
            for item_id in (before, after):
                inv = read_until_replicated(invoker, region, item_id, deadline_s)
                assert inv.result.get("ok") is True, f"{item_id} in {region}: {str(inv.result)[:200]}"
                assert inv.result["record"] == record, f"{item_id} read in {region} differs from what was written"
        replica = env.replica_regions[0]
        replica_arn = env.deployment.function(replica, "reader").environment[ENV_MRK_ARN]
        try:
            env.aws.client("kms", replica).rotate_key_on_demand(KeyId=replica_arn)
        except Exception as error:  # botocore ClientError: KMS refuses to rotate a replica
            refused = type(error).__name__
        else:
            raise AssertionError(f"RotateKeyOnDemand on the {replica} replica was accepted")
        return (
            f"{done.split(' (')[0]}; records written before and after decrypt in "
            f"{', '.join(env.replica_regions)}; rotating the {replica} replica is refused ({refused})"
        )

    return "the multi-region key rotates on demand, and every region decrypts across the rotation", check


def _write(env: EmulatedEnvironment, item_id: str, record: dict[str, Any]) -> str:
    result = env.host.invoke(env.primary_region, "writer", {"id": item_id, "record": record}).get("result") or {}
    assert result.get("ok") is True, f"write of {item_id} failed: {str(result)[:200]}"
    return item_id
