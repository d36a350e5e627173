"""Key rotation: on-demand rotation of the multi-region key.

KMS rotates a multi-region key on its **primary** only; every replica takes the new material
with it (one key id, one material history), and ciphertext made before a rotation still
decrypts. ``rotate`` is the operator's command (a real account, or ``python -m offline up``); the
main job's check of it is in offline/verification/scenario.py (the emulator rotates material for
real: offline/emulator/moto_patches.py).
"""

from __future__ import annotations

from typing import Any

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
