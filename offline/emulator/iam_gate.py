"""The thin adapter between AWS API calls and the policy engine (an emulation).

``request_target`` maps one API call to what IAM evaluates (action, resource ARN, condition
keys such as ``kms:EncryptionContext:*``, ``kms:EncryptionContextKeys``, ``kms:CallerAccount``,
``kms:ReplicaRegion``, ``kms:PrimaryRegion``, ``kms:MacAlgorithm``); offline/emulator/gateway.py decides it with
``policy_engine`` on the server side.
``record_calls`` lets a function's process report each call and what was decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
        if params.get("PrimaryRegion"):
            context["kms:PrimaryRegion"] = params["PrimaryRegion"]
        if params.get("MacAlgorithm"):
            context["kms:MacAlgorithm"] = params["MacAlgorithm"]
        return action, resource, context
    if service == "dynamodb":
        table = params.get("TableName", "*")
        if operation == "GetItem":
            context.update(_projection_keys(params))
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""  # a Query of an index
        return action, f"arn:aws:dynamodb:{region}:{account}:table/{table}{index}", context
    if service == "secretsmanager":
        secret = str(params.get("SecretId", ""))
        resource = secret if secret.startswith("arn:") else f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}"
        return action, resource, context
    if service == "ssm":
        return ssm_targets(operation, params, region, account)[0]
    return action, "*", context


# The SSM reads a role may make in the emulator (README "Discovery"); any other SSM call of a role is refused.
SSM_READS = ("GetParameter", "GetParameters", "GetParametersByPath")


def parameter_arn(name: str, region: str, account: str) -> str:
    """A parameter's (or a path's) ARN as IAM sees it: ``/a/b`` -> ``arn:aws:ssm:<region>:<account>:parameter/a/b``."""
    return name if name.startswith("arn:") else f"arn:aws:ssm:{region}:{account}:parameter/{name.strip('/')}"


def ssm_targets(
    operation: str, params: Mapping[str, Any], region: str, account: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """What IAM evaluates for one SSM call: GetParameters once per name (a name not allowed refuses the
    whole call), GetParametersByPath on the path (no trailing slash), the others on their Name."""
    action = f"ssm:{operation}"
    if operation == "GetParameters":
        return [(action, parameter_arn(str(n), region, account), {}) for n in params.get("Names") or [""]]
    if operation == "GetParametersByPath":
        return [(action, parameter_arn(str(params.get("Path", "")), region, account), {})]
    name = params.get("Name")
    return [(action, parameter_arn(str(name), region, account) if name else "*", {})]


def _projection_keys(params: Mapping[str, Any]) -> dict[str, Any]:
    """``dynamodb:Attributes`` and ``dynamodb:Select`` of a read: the projected top-level names,
    or every attribute (Select ALL_ATTRIBUTES) when nothing is projected."""
    projection = params.get("ProjectionExpression")
    if not projection:
        return {"dynamodb:Select": "ALL_ATTRIBUTES"}
    names = params.get("ExpressionAttributeNames") or {}
    top = [part.strip().split(".")[0].split("[")[0] for part in str(projection).split(",")]
    return {"dynamodb:Attributes": [names.get(t, t) for t in top], "dynamodb:Select": "SPECIFIC_ATTRIBUTES"}


def record_calls(account: str, on_call: Any) -> None:
    """Wrap botocore so every API call in this process is reported to ``on_call`` with what
    the emulated IAM (offline/emulator/gateway.py, server side) decided: allowed, or denied and why."""
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
