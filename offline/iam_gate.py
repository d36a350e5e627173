"""Authorization of the functions' AWS calls against the deployed policies (an emulation).

moto authorizes KMS and DynamoDB calls against resource "*" and ignores condition keys, so
it cannot enforce what the templates say. This module does, for the calls a function makes:
it maps each call to a request (action, resource ARN, condition keys such as
``kms:EncryptionContext:*`` and ``kms:CallerAccount``) and asks the one policy engine
(``policy_engine``) with the role's identity policies and, for KMS, the key policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine import Caller, Request, authorize


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


class PolicySet:
    """The policies that decide one principal's calls."""

    def __init__(
        self,
        *,
        principal_arn: str,
        account: str,
        identity_policies: Iterable[Mapping[str, Any]],
        key_policies: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.principal_arn = principal_arn
        self.account = account
        self.identity_policies = [dict(p) for p in identity_policies]
        self.key_policies = {arn: dict(p) for arn, p in key_policies.items()}

    def to_json(self) -> str:
        return json.dumps(
            {
                "principal_arn": self.principal_arn,
                "account": self.account,
                "identity_policies": self.identity_policies,
                "key_policies": self.key_policies,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PolicySet:
        data = json.loads(text)
        return cls(**data)

    def authorize(self, action: str, resource: str, context: Mapping[str, Any]) -> Decision:
        request = Request(Caller(account=self.account, arn=self.principal_arn), action, resource, context)
        identity = [(f"identity policy {i}", doc) for i, doc in enumerate(self.identity_policies)]
        if not action.lower().startswith("kms:"):
            decision = authorize(request, identity_policies=identity)
            return Decision(decision.allowed, decision.reason)
        key_policy = self.key_policies.get(resource)
        if key_policy is None:
            return Decision(False, f"no key policy known for {resource}")
        decision = authorize(
            request,
            identity_policies=identity,
            resource_policy=(f"key policy of {resource}", key_policy),
            resource_policy_required=True,
        )
        return Decision(decision.allowed, decision.reason)


# KMS operations authorized by IAM alone (no key, or KeyId is only a filter).
NOT_KEY_SCOPED = {"CreateKey", "ListAliases", "ListKeys", "GenerateRandom", "CreateCustomKeyStore"}


def request_target(
    service: str, operation: str, params: Mapping[str, Any], region: str, account: str
) -> tuple[str, str, dict[str, Any]]:
    """(IAM action, resource ARN, condition keys) of one API call."""
    action = f"{service}:{operation}"
    context: dict[str, Any] = {}
    if service == "kms":
        key = "" if operation in NOT_KEY_SCOPED else str(params.get("KeyId", ""))
        if key.startswith("arn:"):
            resource = key
        elif key:
            resource = f"arn:aws:kms:{region}:{account}:key/{key}"
        else:
            resource = "*"  # e.g. Decrypt without KeyId: only a key policy naming "*" could match
        context["kms:CallerAccount"] = account
        encryption_context = params.get("EncryptionContext") or {}
        for k, v in encryption_context.items():
            context[f"kms:EncryptionContext:{k}"] = v
        if encryption_context:
            context["kms:EncryptionContextKeys"] = sorted(encryption_context)
        if params.get("ReplicaRegion"):
            context["kms:ReplicaRegion"] = params["ReplicaRegion"]
        return action, resource, context
    if service == "dynamodb":
        table = params.get("TableName", "*")
        return action, f"arn:aws:dynamodb:{region}:{account}:table/{table}", context
    return action, "*", context


def record_calls(account: str, on_call: Any) -> None:
    """Wrap botocore so every API call in this process is reported to ``on_call`` with what
    the emulated IAM (offline/gateway.py, server side) decided: allowed, or denied and why."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    original = BaseClient._make_api_call
    if getattr(original, "_mrk_toolkit_recorder", False):
        return

    def recorded(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.signing_name or self.meta.service_model.service_name
        action, resource, _ = request_target(service, operation_name, api_params, self.meta.region_name, account)
        call: dict[str, Any] = {"action": action, "resource": resource, "allowed": True, "reason": ""}
        if api_params.get("EncryptionContext"):
            call["context"] = dict(api_params["EncryptionContext"])
        try:
            return original(self, operation_name, api_params)
        except ClientError as exc:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if "(emulated " in message:
                call.update(allowed=False, reason=message.split("(emulated ", 1)[1].rstrip(")"))
            raise
        finally:
            on_call(call)

    recorded._mrk_toolkit_recorder = True  # type: ignore[attr-defined]
    BaseClient._make_api_call = recorded  # type: ignore[method-assign]
