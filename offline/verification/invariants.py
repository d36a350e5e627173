"""The toolkit's invariants, checked on what is DEPLOYED (read back through the AWS APIs), not on
the templates: the same code runs on the emulated AWS (after `demo` deploys) and on a real
account (`verify`). Policies read back are decided by ``policy_engine``.

Per region: the table replica's SSE key is a key of that region, with rotation on; PITR and
deletion protection are on; the SSE key is usable only through DynamoDB; the MRK's key policy
and the functions' role policies bind its use to the encryption context; the writer's role
cannot decrypt and the reader's role cannot generate data keys. Then every role of the
deployment may do exactly its contract (offline/verification/permissions.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloud_assembly.role_access import required_context
from lambda_src.record_crypto.settings import (
    DISCOVERY_PARAMETERS,
    PARAM_RECORD_KEY_ARN,
    PARAM_RECORD_OPTIONS,
    PARAM_TABLE_NAME,
    STORE_DYNAMODB,
    discovery_path,
)
from offline.emulator.iam_gate import request_target
from offline.verification.checks import NamedCheck
from offline.verification.permissions import permission_checks
from offline.verification.resources import ResourceReader, resource_checks
from policy_engine import Caller, Request, as_list, authorize, statements

RECORDS_KEY_STEM = "RecordsKey"  # the records key's logical id in each keys stack (tests/infra/test_logical_ids.py)


@dataclass
class DeployedReader:
    """Reads the deployment back. ``client(service, region)`` gives an API client;
    ``role_arns``: (region, "writer"|"reader") -> the role the function runs under; the stacks are
    named ``<stack_prefix>-...``."""

    client: Callable[[str, str], Any]
    account: str
    table_name: str
    role_arns: Mapping[tuple[str, str], str]
    stack_prefix: str = "MrkToolkit"
    _cache: dict[Any, Any] = field(default_factory=dict)

    def table(self, region: str) -> dict[str, Any]:
        return self.client("dynamodb", region).describe_table(TableName=self.table_name)["Table"]

    def pitr(self, region: str) -> str:
        out = self.client("dynamodb", region).describe_continuous_backups(TableName=self.table_name)
        return (
            out["ContinuousBackupsDescription"]
            .get("PointInTimeRecoveryDescription", {})
            .get("PointInTimeRecoveryStatus", "DISABLED")
        )

    def key_policy(self, region: str, key_arn: str) -> dict[str, Any]:
        policy = self.client("kms", region).get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
        return json.loads(policy)

    def rotation(self, region: str, key_arn: str) -> bool:
        return bool(self.client("kms", region).get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"])

    def role_policies(self, role_arn: str) -> list[tuple[str, Any]]:
        if role_arn in self._cache:
            return self._cache[role_arn]
        iam, name = self.client("iam", "us-east-1"), role_arn.rsplit("/", 1)[1]
        docs: list[tuple[str, Any]] = []
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            meta = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            doc = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=meta["DefaultVersionId"])
            docs.append((attached["PolicyName"], _document(doc["PolicyVersion"]["Document"])))
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            docs.append((policy_name, _document(doc)))
        self._cache[role_arn] = docs
        return docs

    def mrk_arn(self, region: str) -> str:
        """The multi-region key the writer's role policy names (what the function is wired to); with
        tenants, where no role may use it, the records key of the region's keys stack."""
        for _, doc in self.role_policies(self.role_arns[(region, "writer")]):
            for stmt in statements(doc):
                if "kms:GenerateDataKey" in as_list(stmt.get("Action")):
                    return str(as_list(stmt.get("Resource"))[0])
        stack = f"{self.stack_prefix}-Keys-{region}"
        for page in (
            self.client("cloudformation", region).get_paginator("list_stack_resources").paginate(StackName=stack)
        ):
            for resource in page["StackResourceSummaries"]:
                if resource["LogicalResourceId"].startswith(RECORDS_KEY_STEM) and "KMS" in resource["ResourceType"]:
                    return f"arn:aws:kms:{region}:{self.account}:key/{resource['PhysicalResourceId']}"
        raise AssertionError(
            f"the writer's role in {region} names no key for kms:GenerateDataKey, nor does {stack} hold one"
        )


def _document(doc: Any) -> Any:
    if isinstance(doc, str):
        from urllib.parse import unquote

        return json.loads(unquote(doc) if doc.startswith("%7B") else doc)
    return doc


def _decide(
    reader: DeployedReader,
    region: str,
    principal: str,
    action: str,
    key_arn: str,
    context: Mapping[str, str],
    *,
    identity: list[tuple[str, Any]] | None,
    key_policy: bool = True,
) -> tuple[bool, str]:
    """``identity=None``: a principal IAM allows everything (the key policy alone decides)."""
    keys: dict[str, Any] = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
    keys["kms:CallerAccount"] = reader.account
    if context:
        keys["kms:EncryptionContextKeys"] = sorted(context)
    decision = authorize(
        Request(Caller(reader.account, arn=principal), action, key_arn, keys),
        identity_policies=identity or [],
        resource_policy=("key policy", reader.key_policy(region, key_arn)) if key_policy else None,
        resource_policy_required=key_policy,
        identity_allows_all=identity is None,
    )
    return decision.allowed, decision.reason


def table_checks(reader: DeployedReader, region: str) -> list[NamedCheck]:
    def sse_key_of_region() -> str:
        sse = reader.table(region).get("SSEDescription") or {}
        arn = sse.get("KMSMasterKeyArn", "")
        assert sse.get("SSEType") == "KMS" and arn, f"the {region} replica is not encrypted with a KMS key: {sse}"
        assert arn.split(":")[3] == region, (
            f"the {region} replica is encrypted with a key of {arn.split(':')[3]}: {arn}"
        )
        assert reader.rotation(region, arn), f"rotation is off on the SSE key {arn}"
        return f"SSE key {arn.split(':')[-1]} of {region}, rotation on"

    def pitr() -> str:
        status = reader.pitr(region)
        assert status == "ENABLED", f"point-in-time recovery is {status} on the {region} replica"
        return "point-in-time recovery ENABLED"

    def deletion_protection() -> str:
        assert reader.table(region).get("DeletionProtectionEnabled"), f"deletion protection is off in {region}"
        return "deletion protection on"

    def only_through_dynamodb() -> str:
        key = (reader.table(region).get("SSEDescription") or {}).get("KMSMasterKeyArn", "")
        assert key.split(":")[3:4] == [region], f"the SSE key of the {region} replica is not a key of {region}: {key}"
        admin = f"arn:aws:iam::{reader.account}:role/any-administrator"
        direct, why = _decide(reader, region, admin, "kms:Decrypt", key, {}, identity=None)
        assert not direct, f"the SSE key of {region} is usable outside DynamoDB by a principal IAM allows: {why}"
        via = "dynamodb." + region + ".amazonaws.com"
        keys = {"kms:ViaService": via, "kms:CallerAccount": reader.account}
        ok = authorize(
            Request(Caller(reader.account, arn=admin), "kms:Decrypt", key, keys),
            resource_policy=("key policy", reader.key_policy(region, key)),
            resource_policy_required=True,
            identity_allows_all=True,
        )
        assert ok.allowed, f"DynamoDB in {region} cannot use the SSE key: {ok.reason}"
        return f"kms:Decrypt only with kms:ViaService {via}"

    return [
        (f"deployed: the table replica in {region} is encrypted with a key of {region}", sse_key_of_region),
        (f"deployed: point-in-time recovery is on in {region}", pitr),
        (f"deployed: deletion protection is on in {region}", deletion_protection),
        (f"deployed: the SSE key in {region} is usable only through DynamoDB", only_through_dynamodb),
    ]


ContextSource = Callable[[], Mapping[str, str] | None]


def key_checks(reader: DeployedReader, region: str, record_context: ContextSource) -> list[NamedCheck]:
    writer, reader_role = reader.role_arns[(region, "writer")], reader.role_arns[(region, "reader")]

    def context() -> dict[str, str]:
        return dict(record_context() or required_context(reader.key_policy(region, reader.mrk_arn(region))))

    def foreign() -> dict[str, dict[str, str]]:
        good = context()
        out: dict[str, dict[str, str]] = {"no encryption context": {}}
        if reader.table_name in good.values():
            out["another table's context"] = {
                k: ("another-table" if v == reader.table_name else v) for k, v in good.items()
            }
        return out

    def bound(identity: bool) -> str:
        key = reader.mrk_arn(region)
        for role, action in ((writer, "kms:GenerateDataKey"), (reader_role, "kms:Decrypt")):
            policies = reader.role_policies(role) if identity else None
            for label, ctx in foreign().items():
                allowed, why = _decide(
                    reader, region, role, action, key, ctx, identity=policies, key_policy=not identity
                )
                where = "the role policy" if identity else "the key policy"
                assert not allowed, f"{where} lets {role.rsplit('/', 1)[1]} {action} with {label}: {why}"
        return f"GenerateDataKey and Decrypt refused with {', '.join(foreign())}"

    def least_privilege() -> str:
        key, ctx = reader.mrk_arn(region), context()
        for role, action, should in (
            (writer, "kms:GenerateDataKey", True),
            (reader_role, "kms:Decrypt", True),
            (writer, "kms:Decrypt", False),
            (reader_role, "kms:GenerateDataKey", False),
        ):
            allowed, why = _decide(reader, region, role, action, key, ctx, identity=reader.role_policies(role))
            kind = "writer" if role == writer else "reader"
            assert allowed == should, f"the {kind}'s role {'cannot' if should else 'can'} {action} on the MRK: {why}"
        return "writer: GenerateDataKey only; reader: Decrypt only (key and role policies together)"

    return [
        (f"deployed: the MRK key policy in {region} binds use to the encryption context", lambda: bound(False)),
        (f"deployed: the role policies in {region} bind MRK use to the encryption context", lambda: bound(True)),
        (f"deployed: in {region} the writer cannot decrypt and the reader cannot generate data keys", least_privilege),
    ]


def writer_read_checks(reader: DeployedReader, region: str) -> list[NamedCheck]:
    """The writer's role reads the stored version before its conditional write, and nothing
    else: decided on its deployed policies with the request keys the gateway builds."""
    writer = reader.role_arns[(region, "writer")]

    def get_item(*projected: str) -> tuple[bool, str]:
        params: dict[str, Any] = {"TableName": reader.table_name, "Key": {"id": {"S": "x"}}}
        if projected:
            names = {f"#a{i}": name for i, name in enumerate(projected)}
            params |= {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        action, resource, keys = request_target("dynamodb", "GetItem", params, region, reader.account)
        decision = authorize(
            Request(Caller(reader.account, arn=writer), action, resource, keys),
            identity_policies=reader.role_policies(writer),
        )
        return decision.allowed, decision.reason

    def version_only() -> str:
        for projected, should in ((("_version",), True), ((), False), (("_version", "name"), False)):
            allowed, why = get_item(*projected)
            what = f"GetItem of {', '.join(projected)}" if projected else "GetItem of the whole item"
            assert allowed == should, f"the writer's role {'cannot' if should else 'can'} {what}: {why}"
        return "GetItem of _version allowed; of the whole item, or of _version and name, refused"

    return [(f"deployed: in {region} the writer's role may read the stored version and nothing else", version_only)]


def discovery_checks(reader: DeployedReader, region: str) -> list[NamedCheck]:
    """The region's discovery parameters (README "Discovery") name the deployed key and table."""

    def parameters() -> str:
        path = discovery_path(reader.stack_prefix, region)
        pages = reader.client("ssm", region).get_paginator("get_parameters_by_path").paginate(Path=path)
        got = {str(p["Name"]).rsplit("/", 1)[1]: str(p["Value"]) for page in pages for p in page["Parameters"]}
        missing = [f"{path}/{name}" for name in DISCOVERY_PARAMETERS if name not in got]
        assert not missing, f"missing in {region}: {', '.join(missing)} (an application cannot discover the deployment)"
        key = reader.mrk_arn(region)
        assert got[PARAM_RECORD_KEY_ARN] == key, (
            f"{path}/{PARAM_RECORD_KEY_ARN} is {got[PARAM_RECORD_KEY_ARN]}, "
            f"the deployed records key of {region} is {key}"
        )
        assert got[PARAM_TABLE_NAME] == reader.table_name, (
            f"{path}/{PARAM_TABLE_NAME} is {got[PARAM_TABLE_NAME]!r}, the deployed table is {reader.table_name!r}"
        )
        reader.table(region)  # the table it names has a replica in the region
        store = json.loads(got[PARAM_RECORD_OPTIONS]).get("store")
        assert store == STORE_DYNAMODB, f"{path}/{PARAM_RECORD_OPTIONS} names the store {store!r}, not {STORE_DYNAMODB}"
        key_id = key.rsplit("/", 1)[1]
        return f"{path}: the {region} records key {key_id}, table {reader.table_name}, {len(got)} parameters"

    return [(f"deployed: the discovery parameters of {region} name its key and table", parameters)]


def deployed_checks(
    reader: DeployedReader, regions: tuple[str, ...], record_context: ContextSource = lambda: None
) -> list[NamedCheck]:
    out: list[NamedCheck] = []
    for region in regions:
        out += table_checks(reader, region) + key_checks(reader, region, record_context)
        out += writer_read_checks(reader, region) + discovery_checks(reader, region)
    out += resource_checks(
        ResourceReader(reader.client, reader.account, reader.role_arns, reader.stack_prefix, regions)
    )
    return out + permission_checks(reader, regions)
