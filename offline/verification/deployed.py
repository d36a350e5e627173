"""A real account behind the one ``Environment`` interface (offline/verification/checks.py):
``python -m offline verify`` runs the main job's list of checks on it (scenario.py ``main_job``),
the same list ``demo`` runs on the emulator. The functions are invoked with `lambda invoke`; the
deployment is read back through the AWS APIs; the encryption-context conditions are asked of
IAM's policy simulator with the key policy and context. It has none of the emulator's
capabilities: the checks that need one (holding replication, the functions' logs, an alarm
evaluated at once, a rotation at will) are reported N/A.

Needs AWS credentials that may: cloudformation:DescribeStacks on the toolkit's stacks,
lambda:InvokeFunction and lambda:GetFunctionConfiguration on its functions,
dynamodb:GetItem/PutItem/DeleteItem (the tamper checks write a modified copy of a test item, then
restore it; the clean-up deletes every item the run wrote), DescribeTable and
DescribeContinuousBackups on the records table, kms:GetKeyPolicy and kms:GetKeyRotationStatus on its
keys, iam:GetRole*/ListRolePolicies/ListAttachedRolePolicies/
GetPolicy/GetPolicyVersion on its roles, iam:SimulatePrincipalPolicy and sts:GetCallerIdentity;
for the alarms, cloudwatch:DescribeAlarms, sns:GetTopicAttributes and kms:DescribeKey; for the
resource policies and encryption at rest of every resource of its stacks
(offline/verification/resources.py), cloudformation:ListStackResources, kms:DescribeKey and
kms:GetKeyPolicy on every key, logs:DescribeLogGroups, sns:GetTopicAttributes,
dynamodb:DescribeTable and dynamodb:GetResourcePolicy, secretsmanager:DescribeSecret and
secretsmanager:GetResourcePolicy, rds:DescribeDBClusters and rds:DescribeDBInstances, iam:GetRole
and lambda:GetPolicy; for what every role of the stacks may do (offline/verification/permissions.py),
the same stack and key reads and the roles' policy reads above; for the discovery parameters,
ssm:GetParametersByPath on /<stackPrefix>/<region> in each region.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3

from lambda_src.record_crypto.settings import BeaconField
from offline.verification.aurora_scenario import DYNAMODB
from offline.verification.checks import Capability, Invocation, NotApplicable
from offline.verification.invariants import DeployedReader, required_context
from offline.verification.tenants import tenant_regions


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
        if "FinderFunctionName" in outputs:  # beacon fields configured (README "Beacons")
            names[(region, "finder")] = outputs["FinderFunctionName"]
    return names


def _entries(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, value in sorted(values.items()):
        many = isinstance(value, list)
        out.append(
            {
                "ContextKeyName": name,
                "ContextKeyValues": [str(v) for v in value] if many else [str(value)],
                "ContextKeyType": "stringList" if many else "string",
            }
        )
    return out


@dataclass
class PolicySimulator:
    """IAM's policy simulator asked the question KMS would ask: the role's policies AND the key
    policy (``ResourcePolicy``), with the request's condition keys (``ContextEntries``)."""

    client: Any  # factory: (service, region) -> client
    account: str

    def kms_allowed(
        self, region: str, role_arn: str, action: str, key_arn: str, context: dict[str, str]
    ) -> tuple[bool, str]:
        key_policy = self.client("kms", region).get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
        keys: dict[str, Any] = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
        keys.update({"kms:CallerAccount": self.account, "aws:PrincipalArn": role_arn})
        if context:
            keys["kms:EncryptionContextKeys"] = sorted(context)
        result = self.client("iam", "us-east-1").simulate_principal_policy(
            PolicySourceArn=role_arn,
            ActionNames=[action],
            ResourceArns=[key_arn],
            ResourcePolicy=key_policy,
            ResourceOwner=f"arn:aws:iam::{self.account}:root",
            ContextEntries=_entries(keys),
        )["EvaluationResults"][0]
        return result["EvalDecision"] == "allowed", f"IAM policy simulation: {result['EvalDecision']}"


def _client_factory(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)


@dataclass
class DeployedEnvironment:
    primary_region: str
    replica_regions: tuple[str, ...]
    sensitive_fields: tuple[str, ...]
    table_name: str
    function_names: dict[tuple[str, str], str]
    replication_deadline_s: float = 60.0
    stack_prefix: str = "MrkToolkit"
    client: Any = _client_factory  # (service, region) -> client: only the endpoint may differ
    invoker: Any = None  # a LambdaInvoker of function_names (the default)
    store: str = DYNAMODB
    kms_decider: str = "IAM's policy simulator"
    # A real account can do what any table writer can (alter a stored item); --no-tamper-checks takes it away.
    capabilities: frozenset[Capability] = frozenset({Capability.ALTER_ITEMS})
    beacon_fields: tuple[BeaconField, ...] = ()  # the config's beaconFields: the finder's checks (beacons.py)

    def __post_init__(self) -> None:
        if self.invoker is None:
            self.invoker = LambdaInvoker(self.function_names, lambda region: self.client("lambda", region))

    def invoke(self, region: str, kind: str, event: dict[str, Any]) -> Invocation:
        return self.invoker.invoke(region, kind, event)  # type: ignore[no-any-return]

    def _ddb(self, region: str) -> Any:
        return self.client("dynamodb", region)

    @cached_property
    def account(self) -> str:
        return str(self.client("sts", self.primary_region).get_caller_identity()["Account"])

    @cached_property
    def role_arns(self) -> dict[tuple[str, str], str]:
        return {
            (region, kind): self.client("lambda", region).get_function_configuration(FunctionName=name)["Role"]
            for (region, kind), name in self.function_names.items()
        }

    def tenant_session_kms(
        self, region: str, kind: str, tenant: str, kms_region: str | None = None
    ) -> tuple[Any, dict[str, str]]:
        raise NotApplicable(Capability.TENANT_SESSIONS)  # an operator is not the function's role

    @cached_property
    def tenant_regions(self) -> dict[str, tuple[str, ...]]:
        """Tenant -> the regions of its key, from the deployed readers' TENANT_KEYS."""
        environments = {
            region: self.client("lambda", region)
            .get_function_configuration(FunctionName=name)
            .get("Environment", {})
            .get("Variables", {})
            for (region, kind), name in self.function_names.items()
            if kind == "reader"
        }
        return tenant_regions(environments)

    @cached_property
    def reader(self) -> DeployedReader:
        return DeployedReader(self.client, self.account, self.table_name, self.role_arns, self.stack_prefix)

    def _record_context(self, region: str) -> dict[str, str]:
        return required_context(self.reader.key_policy(region, self.reader.mrk_arn(region)))

    def observed_context(self) -> Mapping[str, str] | None:
        return None  # what the writers send is not observable here: the key policy's context is used

    def kms_allowed(self, region: str, kind: str, action: str, context: Mapping[str, str]) -> tuple[bool, str]:
        simulator = PolicySimulator(self.client, self.account)
        key = self.reader.mrk_arn(region)
        return simulator.kms_allowed(region, self.role_arns[(region, kind)], action, key, dict(context))

    def raw_item(self, region: str, item_id: str) -> dict[str, Any] | None:
        return (
            self._ddb(region)
            .get_item(TableName=self.table_name, Key={"id": {"S": item_id}}, ConsistentRead=True)
            .get("Item")
        )

    def put_raw_item(self, region: str, item: dict[str, Any]) -> None:
        self._ddb(region).put_item(TableName=self.table_name, Item=item)

    def delete_raw_item(self, region: str, item_id: str) -> None:
        self._ddb(region).delete_item(TableName=self.table_name, Key={"id": {"S": item_id}})

    def cross_role_denied(self, region: str, code_of: str, role_of: str, event: dict[str, Any]) -> tuple[bool, str]:
        """On AWS a function cannot run under another's role: ask IAM's policy simulator, with the
        key policy and the record context (a context-conditioned grant must not read as denied)."""
        action = "kms:GenerateDataKey" if code_of == "writer" else "kms:Decrypt"
        allowed, why = self.kms_allowed(region, role_of, action, self._record_context(region))
        if allowed:
            return False, f"the {role_of} role may {action} on the {region} MRK with the record context ({why})"
        return True, f"the {role_of} role may not {action} on the {region} MRK with the record context ({why})"

    def problems(self) -> list[tuple[str, str]]:
        return []

    # -- what only the emulator can do: never called (the checks that need it are N/A here) --------
    def held_replication(self) -> contextlib.AbstractContextManager[None]:
        raise NotApplicable(Capability.HOLD_REPLICATION)

    def outage(self, region: str, *, down: bool, services: Iterable[str] = ()) -> None:
        raise NotApplicable(Capability.OUTAGES)

    def function_logs(self) -> str:
        raise NotApplicable(Capability.FUNCTION_LOGS)

    def audit_deliveries(self) -> list[dict[str, Any]]:
        raise NotApplicable(Capability.AUDIT_ALERTS)

    def logs_by_region(self) -> Mapping[str, str]:
        raise NotApplicable(Capability.FUNCTION_LOGS)

    def database(self) -> Any:
        raise NotApplicable(Capability.DATABASE_SESSIONS)
