"""Erasure: crypto-shredding one tenant (``python -m offline erase-tenant``).

A tenant's records are encrypted under the tenant's own multi-region key. Erasing the tenant
means making that key unusable everywhere and then deleting it: disable it in every region
(immediate: every Decrypt/GenerateDataKey is refused at once), schedule deletion of every
replica, then of the primary. KMS requires that order: a primary scheduled while replicas
exist goes to PendingReplicaDeletion and its waiting period starts only when the last replica
is deleted. Within the waiting period ``--cancel`` undoes it (CancelKeyDeletion, then enable).
The same code runs against a real account and ``python -m offline up`` (AWS_ENDPOINT_URL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MIN_PENDING_DAYS = 7
MAX_PENDING_DAYS = 30

KmsFor = Callable[[str], Any]


@dataclass(frozen=True)
class TenantKey:
    """The tenant's key as one region sees it."""

    region: str
    key_id: str
    arn: str
    role: str  # PRIMARY or REPLICA
    state: str


def tenant_alias(key_alias: str, tenant_id: str) -> str:
    """The alias of a tenant's key in each of its regions."""
    return f"{key_alias}/tenant/{tenant_id}"


def find_keys(kms_for: KmsFor, alias: str, regions: tuple[str, ...]) -> list[TenantKey]:
    """The tenant key in each region, replicas first and the primary last (the order KMS requires)."""
    keys = []
    for region in regions:
        meta = kms_for(region).describe_key(KeyId=alias)["KeyMetadata"]
        role = meta.get("MultiRegionConfiguration", {}).get("MultiRegionKeyType", "SINGLE")
        keys.append(TenantKey(region, meta["KeyId"], meta["Arn"], role, meta["KeyState"]))
    return sorted(keys, key=lambda k: k.role == "PRIMARY")


def plan(keys: list[TenantKey], days: int) -> list[str]:
    """What ``erase`` will do, one line per step."""
    lines = [f"disable {k.arn} ({k.role.lower()}, {k.region}, now {k.state})" for k in keys]
    lines += [f"schedule deletion of {k.arn} in {days} days ({k.role.lower()})" for k in keys]
    return lines


def erase(kms_for: KmsFor, keys: list[TenantKey], days: int) -> list[str]:
    """Disable everywhere, then schedule deletion (replicas, then the primary); one line per key."""
    for key in keys:
        if key.state == "Enabled":
            kms_for(key.region).disable_key(KeyId=key.key_id)
    lines = []
    for key in keys:
        kms = kms_for(key.region)
        kms.schedule_key_deletion(KeyId=key.key_id, PendingWindowInDays=days)
        meta = kms.describe_key(KeyId=key.key_id)["KeyMetadata"]
        state, when = meta["KeyState"], meta.get("DeletionDate")
        final = (
            f"final on {when:%Y-%m-%d %H:%M} UTC"
            if when is not None and state == "PendingDeletion"
            else f"its {days}-day waiting period starts when the last replica is deleted"
        )
        lines.append(f"{key.region}: {key.role.lower()} {key.key_id} disabled, {state}: {final}")
    return lines


def cancel(kms_for: KmsFor, keys: list[TenantKey]) -> list[str]:
    """CancelKeyDeletion then EnableKey in every region (primary first); one line per key."""
    lines = []
    for key in reversed(keys):
        kms = kms_for(key.region)
        if key.state in ("PendingDeletion", "PendingReplicaDeletion"):
            kms.cancel_key_deletion(KeyId=key.key_id)
        kms.enable_key(KeyId=key.key_id)
        lines.append(f"{key.region}: {key.role.lower()} {key.key_id} deletion cancelled, enabled")
    return lines
