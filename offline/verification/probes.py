"""Direct KMS requests with a function role's own credentials (past the reader's header check):
the emulated KMS must decide them by the key and role policies' conditions."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from offline.emulator.deployment import Deployment


class KmsProbes:
    def __init__(self, aws: Any, deployment: Deployment, host: Any) -> None:
        self.aws, self.deployment, self.host = aws, deployment, host

    def mrk_arn(self, region: str) -> str:
        for key in self.deployment.keys.values():
            if key["Region"] == region and key["KeyId"].startswith("mrk-"):
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


def condition_checks(probes: KmsProbes, regions: tuple[str, ...], table: str) -> list[tuple[str, Any]]:
    """Per region: each role's own KMS action, asked directly of the emulated KMS, is allowed with
    the record context and refused with a foreign one (the policies' conditions decide)."""
    out = []
    for region in regions:
        for kind, action in (("writer", "kms:GenerateDataKey"), ("reader", "kms:Decrypt")):

            def check(region: str = region, kind: str = kind, action: str = action) -> str:
                context = probes.record_context()
                blob = probes.ciphertext(region, context) if action == "kms:Decrypt" else None
                allowed, why = probes.kms_as(region, kind, action, context, blob)
                assert allowed, f"the {kind}'s role may not {action} even with the record context: {why}"
                refused = []
                for label, foreign in foreign_contexts(context, table).items():
                    allowed, why = probes.kms_as(region, kind, action, foreign, blob)
                    assert not allowed, f"the emulated KMS let the {kind}'s role {action} with {label}: {why}"
                    refused.append(label)
                return f"allowed with the record context; refused with {' and '.join(refused)} ({why})"

            name = f"the emulated KMS refuses the {kind}'s role in {region} a foreign encryption context"
            out.append((name, check))
    return out
