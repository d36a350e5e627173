"""Verify a real deployment with the same scenario: `lambda invoke` the writer in the primary
region and the readers in the others, poll through replication lag, report.

Needs AWS credentials that may: cloudformation:DescribeStacks on the toolkit's stacks,
lambda:InvokeFunction on its functions, dynamodb:GetItem/PutItem on the records table (the
tamper checks write a modified copy of a test item, then restore it) and
iam:SimulatePrincipalPolicy on its roles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from offline.scenario import Invocation


class LambdaInvoker:
    """The only layer that differs from the emulator: `lambda invoke` by function name."""

    def __init__(self, function_names: dict[tuple[str, str], str], client_factory: Any = None) -> None:
        self.function_names = function_names
        self._client = client_factory or (lambda region: boto3.client("lambda", region_name=region))
        self._clients: dict[str, Any] = {}

    def invoke(self, region: str, kind: str, event: dict[str, Any]) -> Invocation:
        client = self._clients.setdefault(region, self._client(region))
        response = client.invoke(
            FunctionName=self.function_names[(region, kind)],
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = response["Payload"].read()
        body = json.loads(payload) if payload else {}
        if response.get("FunctionError"):
            return Invocation(result={}, function_error=str(response["FunctionError"]))
        return Invocation(result=body if isinstance(body, dict) else {"ok": False, "error": {"type": "BadPayload"}})


def discover_functions(
    stack_prefix: str, regions: tuple[str, ...], cfn_factory: Any = None
) -> dict[tuple[str, str], str]:
    """Function names from the functions stacks' outputs (WriterFunctionName, ReaderFunctionName)."""
    factory = cfn_factory or (lambda region: boto3.client("cloudformation", region_name=region))
    names: dict[tuple[str, str], str] = {}
    for region in regions:
        stack = factory(region).describe_stacks(StackName=f"{stack_prefix}-Functions-{region}")["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        names[(region, "writer")] = outputs["WriterFunctionName"]
        names[(region, "reader")] = outputs["ReaderFunctionName"]
    return names


@dataclass
class DeployedEnvironment:
    primary_region: str
    replica_regions: tuple[str, ...]
    sensitive_fields: tuple[str, ...]
    table_name: str
    function_names: dict[tuple[str, str], str]
    controls_replication_lag: bool = False

    def _ddb(self, region: str) -> Any:
        return boto3.client("dynamodb", region_name=region)

    def raw_item(self, region: str, item_id: str) -> dict[str, Any] | None:
        return (
            self._ddb(region)
            .get_item(TableName=self.table_name, Key={"id": {"S": item_id}}, ConsistentRead=True)
            .get("Item")
        )

    def put_raw_item(self, region: str, item: dict[str, Any]) -> None:
        self._ddb(region).put_item(TableName=self.table_name, Item=item)

    def cross_role_denied(self, region: str, code_of: str, role_of: str, event: dict[str, Any]) -> tuple[bool, str]:
        """On AWS a function cannot run under another's role: ask IAM's policy simulator."""
        lam = boto3.client("lambda", region_name=region)
        role_arn = lam.get_function_configuration(FunctionName=self.function_names[(region, role_of)])["Role"]
        actions = ["kms:GenerateDataKey", "dynamodb:PutItem"] if code_of == "writer" else ["kms:Decrypt"]
        result = boto3.client("iam").simulate_principal_policy(PolicySourceArn=role_arn, ActionNames=actions)
        allowed = [r["EvalActionName"] for r in result["EvaluationResults"] if r["EvalDecision"] == "allowed"]
        if allowed:
            return False, f"the {role_of} role may {', '.join(allowed)}"
        return True, f"IAM policy simulation: the {role_of} role may not {', '.join(actions)}"

    def function_logs(self) -> str | None:
        return None
