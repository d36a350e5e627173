"""Authorization of the functions' AWS calls against the deployed policies (an emulation).

moto authorizes KMS and DynamoDB calls against resource "*" and ignores condition keys, so
it cannot enforce what the templates say. This module does, for the calls a function makes:
it evaluates the role's identity policies and, for KMS, the key policy, with the request's
resource ARN and condition keys (``kms:EncryptionContext:*``, ``kms:CallerAccount``,
``aws:PrincipalArn``). It follows AWS's rules for one account: an explicit Deny wins; a KMS
call is allowed when the key policy allows the principal itself, or allows the account (which
delegates to IAM) and an identity policy allows it too. Unknown condition operators fail
closed. It is installed into a function's process by wrapping botocore's API call.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SUPPORTED_OPERATORS = {
    "StringEquals",
    "StringLike",
    "ArnLike",
    "ArnEquals",
    "StringNotEquals",
    "Bool",
    "StringEqualsIfExists",
    "ForAllValues:StringEquals",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern.replace("?", "[?]")) if "*" in pattern else pattern == value


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

    # -- evaluation ---------------------------------------------------------------------------
    def _condition_ok(self, condition: Mapping[str, Any] | None, context: Mapping[str, Any]) -> bool:
        if not condition:
            return True
        lowered = {k.lower(): v for k, v in context.items()}
        for operator, pairs in condition.items():
            if operator not in SUPPORTED_OPERATORS:
                return False  # fail closed on anything this emulation does not understand
            for key, expected in pairs.items():
                actual = lowered.get(key.lower())
                expected_values = [str(v) for v in _as_list(expected)]
                if operator == "ForAllValues:StringEquals":
                    # Every value in the request must be allowed; an absent key is an empty set.
                    if any(str(v) not in expected_values for v in _as_list(actual or [])):
                        return False
                    continue
                if operator == "StringEqualsIfExists":
                    if actual is not None and str(actual) not in expected_values:
                        return False
                    continue
                if isinstance(actual, list):
                    return False  # a multi-valued key needs a set operator
                if operator == "StringNotEquals":
                    if actual is not None and str(actual) in expected_values:
                        return False
                    continue
                if actual is None:
                    return False
                if operator in ("StringEquals", "ArnEquals", "Bool"):
                    if str(actual) not in expected_values:
                        return False
                elif not any(_matches(e, str(actual)) for e in expected_values):
                    return False
        return True

    def _statement_applies(
        self, stmt: Mapping[str, Any], action: str, resource: str, context: Mapping[str, Any]
    ) -> bool:
        if "NotAction" in stmt or "NotResource" in stmt or "NotPrincipal" in stmt:
            return False  # not used by the toolkit; never grants here
        if not any(_matches(a.lower(), action.lower()) for a in _as_list(stmt.get("Action", []))):
            return False
        if not any(_matches(r, resource) for r in _as_list(stmt.get("Resource", []))):
            return False
        return self._condition_ok(stmt.get("Condition"), context)

    def _principals(self, stmt: Mapping[str, Any]) -> list[str]:
        principal = stmt.get("Principal")
        if principal == "*":
            return ["*"]
        if isinstance(principal, Mapping):
            return [str(p) for p in _as_list(principal.get("AWS", []))]
        return []

    def _evaluate(
        self, docs: list[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, Any], *, key_policy: bool
    ) -> tuple[str, str]:
        """Returns ("deny"|"allow-principal"|"allow-account"|"none", sid)."""
        result, sid = "none", ""
        root = f"arn:aws:iam::{self.account}:root"
        for doc in docs:
            for stmt in _as_list(doc.get("Statement", [])):
                if not self._statement_applies(stmt, action, "*" if key_policy else resource, context):
                    continue
                if key_policy:
                    principals = self._principals(stmt)
                    if "*" in principals or self.principal_arn in principals:
                        kind = "allow-principal"
                    elif root in principals or self.account in principals:
                        kind = "allow-account"
                    else:
                        continue
                else:
                    kind = "allow-principal"
                if stmt.get("Effect") == "Deny":
                    return "deny", stmt.get("Sid", "")
                if result != "allow-principal":
                    result, sid = kind, stmt.get("Sid", "")
        return result, sid

    def authorize(self, action: str, resource: str, context: Mapping[str, Any]) -> Decision:
        context = {"aws:PrincipalArn": self.principal_arn, **context}
        identity, identity_sid = self._evaluate(self.identity_policies, action, resource, context, key_policy=False)
        if identity == "deny":
            return Decision(False, f"explicit deny in an identity policy ({identity_sid})")
        if action.startswith("kms:"):
            key_policy = self.key_policies.get(resource)
            if key_policy is None:
                return Decision(False, f"no key policy known for {resource}")
            key, key_sid = self._evaluate([key_policy], action, resource, context, key_policy=True)
            if key == "deny":
                return Decision(False, f"explicit deny in the key policy ({key_sid})")
            if key == "allow-principal":
                return Decision(True, f"key policy allows the role ({key_sid})")
            if key == "allow-account" and identity != "none":
                return Decision(True, f"key policy delegates to IAM ({key_sid}) and the role allows ({identity_sid})")
            if key == "none":
                return Decision(
                    False, f"the key policy of {resource} does not allow {action} for this role and context"
                )
            return Decision(False, f"no identity policy allows {action} on {resource} with this context")
        if identity == "allow-principal":
            return Decision(True, f"identity policy allows ({identity_sid})")
        return Decision(False, f"no identity policy allows {action} on {resource}")


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
        for k, v in (params.get("EncryptionContext") or {}).items():
            context[f"kms:EncryptionContext:{k}"] = v
        return action, resource, context
    if service == "dynamodb":
        table = params.get("TableName", "*")
        if operation == "GetItem":
            context.update(_projection_keys(params))
        return action, f"arn:aws:dynamodb:{region}:{account}:table/{table}", context
    return action, "*", context


def _projection_keys(params: Mapping[str, Any]) -> dict[str, Any]:
    """``dynamodb:Attributes`` and ``dynamodb:Select`` of a read: the projected top-level names,
    or every attribute (Select ALL_ATTRIBUTES) when nothing is projected."""
    projection = params.get("ProjectionExpression")
    if not projection:
        return {"dynamodb:Select": "ALL_ATTRIBUTES"}
    names = params.get("ExpressionAttributeNames") or {}
    top = [part.strip().split(".")[0].split("[")[0] for part in str(projection).split(",")]
    return {"dynamodb:Attributes": [names.get(t, t) for t in top], "dynamodb:Select": "SPECIFIC_ATTRIBUTES"}


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
