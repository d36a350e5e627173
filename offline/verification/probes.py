"""Direct KMS requests with a function role's own credentials (past the reader's header check):
the emulated KMS must decide them by the key and role policies' conditions; and the main job's
check that each role is refused a foreign encryption context (on the emulator, these requests; on
an account, IAM's policy simulator)."""

from __future__ import annotations

from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from offline.emulator.deployment import Deployment
from offline.verification.checks import Check, Environment, check
from offline.verification.invariants import RECORDS_KEY_STEM, required_context


class KmsProbes:
    def __init__(self, aws: Any, deployment: Deployment, host: Any) -> None:
        self.aws, self.deployment, self.host = aws, deployment, host

    def mrk_arn(self, region: str) -> str:
        """The region's records key (with beacon fields, the beacon HMAC key is multi-region too)."""
        mrks = [
            (name, k)
            for name, k in self.deployment.keys.items()
            if k["Region"] == region and k["KeyId"].startswith("mrk-")
        ]
        for _name, key in sorted(mrks, key=lambda nk: not nk[0].split("/", 1)[-1].startswith(RECORDS_KEY_STEM)):
            return key["Arn"]
        raise AssertionError(f"no multi-region key deployed in {region}")

    def record_context(self) -> dict[str, str]:
        """The encryption context the writers really send (observed on the emulated KMS)."""
        seen = self.host.seen_contexts.get("kms:GenerateDataKey")
        if not seen:
            raise AssertionError("no writer has called kms:GenerateDataKey with an encryption context yet")
        return dict(seen)

    def _client(self, region: str, kind: str) -> Any:
        role_arn = self.deployment.function(region, kind).role_arn
        return self.aws.role_session(role_arn).client("kms", region_name=region, endpoint_url=self.aws.endpoint_url)

    def ciphertext(self, region: str, context: dict[str, str]) -> bytes:
        """A data key wrapped by the region's MRK with ``context`` (made by that region's writer)."""
        out = self._client(region, "writer").generate_data_key(
            KeyId=self.mrk_arn(region), KeySpec="AES_256", EncryptionContext=context
        )
        return bytes(out["CiphertextBlob"])

    def kms_as(
        self, region: str, kind: str, action: str, context: dict[str, str], blob: bytes | None = None
    ) -> tuple[bool, str]:
        """(allowed, why) for ``action`` on the region's MRK with the role of ``kind``."""
        client, key = self._client(region, kind), self.mrk_arn(region)
        try:
            if action == "kms:GenerateDataKey":
                client.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=context)
            elif action == "kms:Decrypt":
                data = blob if blob is not None else self.ciphertext(region, self.record_context())
                client.decrypt(KeyId=key, CiphertextBlob=data, EncryptionContext=context)
            else:
                raise ValueError(action)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") != "AccessDeniedException":
                return True, f"not denied by policy but failed with {error.get('Code')}: {error.get('Message')}"
            return False, str(error.get("Message", "")).split("(emulated IAM: ", 1)[-1].rstrip(")")
        return True, "allowed"


def foreign_contexts(context: dict[str, str], table: str) -> dict[str, dict[str, str]]:
    """Contexts the policies must refuse: another table's, and none at all."""
    out: dict[str, dict[str, str]] = {}
    if table in context.values():
        out[f"another table's context (table {table} -> another-table)"] = {
            k: ("another-table" if v == table else v) for k, v in context.items()
        }
    out["no encryption context"] = {}
    return out


def context_checks(env: Environment) -> list[Check]:
    """Per region: each role's own KMS action is allowed with the record's encryption context and
    refused with a foreign one, decided by the key and role policies' conditions: asked directly
    of the emulated KMS with the role's credentials, or of IAM's policy simulator on an account."""
    return [
        check(
            f"KMS refuses the {kind}'s role in {region} a foreign encryption context",
            partial(_foreign_context_refused, region, kind, action),
        )
        for region in (env.primary_region, *env.replica_regions)
        for kind, action in (("writer", "kms:GenerateDataKey"), ("reader", "kms:Decrypt"))
    ]


def _foreign_context_refused(region: str, kind: str, action: str, env: Environment) -> str:
    reader = env.reader
    context = dict(env.observed_context() or required_context(reader.key_policy(region, reader.mrk_arn(region))))
    allowed, why = env.kms_allowed(region, kind, action, context)
    assert allowed, f"the {kind}'s role may not {action} even with the record context: {why}"
    refused = []
    for label, foreign in foreign_contexts(context, env.table_name).items():
        allowed, why = env.kms_allowed(region, kind, action, foreign)
        assert not allowed, f"{env.kms_decider} allowed the {kind}'s role {action} with {label}: {why}"
        refused.append(label)
    return f"allowed with the record context; refused with {' and '.join(refused)} ({env.kms_decider}: {why})"
