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


def request_target(
    service: str, operation: str, params: Mapping[str, Any], region: str, account: str
) -> tuple[str, str, dict[str, Any]]:
    """(IAM action, resource ARN, condition keys) of one API call."""
    action = f"{service}:{operation}"
    context: dict[str, Any] = {}
    if service == "kms":
        key = str(params.get("KeyId", ""))
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
        return action, resource, context
    if service == "dynamodb":
        table = params.get("TableName", "*")
        return action, f"arn:aws:dynamodb:{region}:{account}:table/{table}", context
    return action, "*", context


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._data

    def read(self, *_: Any) -> bytes:
        data, self._data = self._data, b""
        return data


def install(policies: PolicySet, *, on_decision: Any = None) -> None:
    """Wrap botocore so every API call in this process is authorized first.

    A denied call of a JSON-protocol service (KMS, DynamoDB) still goes through botocore's
    whole pipeline, with an HTTP 400 AccessDeniedException answered at ``before-send`` instead
    of the service's reply, so the caller's event hooks and error parsing see what real AWS
    would send. Other protocols get the ClientError raised directly.
    """
    import threading

    from botocore.awsrequest import AWSResponse
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    original = BaseClient._make_api_call
    if getattr(original, "_mrk_toolkit_gate", False):
        return
    denial = threading.local()

    def answer_denied(request: Any, **_: Any) -> AWSResponse | None:
        body = getattr(denial, "body", None)
        if body is None:
            return None
        headers = {"x-amzn-RequestId": "emulated-iam", "Content-Type": "application/x-amz-json-1.1"}
        return AWSResponse(request.url, 400, headers, _Body(body))

    def gated(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.signing_name or self.meta.service_model.service_name
        action, resource, context = request_target(
            service, operation_name, api_params, self.meta.region_name, policies.account
        )
        decision = policies.authorize(action, resource, context)
        if on_decision is not None:
            on_decision(action, resource, decision)
        if decision.allowed:
            return original(self, operation_name, api_params)
        message = (
            f"User: {policies.principal_arn} is not authorized to perform: {action} on resource: "
            f"{resource} (emulated IAM: {decision.reason})"
        )
        if self.meta.service_model.protocol == "json":
            denial.body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
            self.meta.events.register_first("before-send", answer_denied, unique_id="mrk-toolkit-iam-gate")
            try:
                return original(self, operation_name, api_params)
            finally:
                denial.body = None
        raise ClientError(
            {
                "Error": {"Code": "AccessDeniedException", "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            operation_name,
        )

    gated._mrk_toolkit_gate = True  # type: ignore[attr-defined]
    BaseClient._make_api_call = gated  # type: ignore[method-assign]
