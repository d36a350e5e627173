"""Invariants of the roles and functions of every region."""

from __future__ import annotations

from typing import Any

from cdk_constructs import lambda_bundle
from cdk_constructs.encrypting_functions import ENV_MRK_ARN, ENV_TABLE_NAME, record_encryption_context
from tests.infra.helpers import (
    actions,
    as_list,
    iam_policy_documents,
    output_value,
    resources,
    stack_output_ref,
    statements,
)
from tests.infra.synth import Synthesized


def _function(tpl: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [
        r for lid, r in resources(tpl, "AWS::Lambda::Function").items() if lid.startswith(f"Records{kind}Function")
    ]
    assert len(found) == 1
    return found[0]


def _role_statements(tpl: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    role_ids = [lid for lid in resources(tpl, "AWS::IAM::Role") if lid.startswith(f"Records{kind}Role")]
    assert len(role_ids) == 1
    assert not resources(tpl, "AWS::IAM::Policy"), "no inline policies: customer-managed policies only"
    assert "Policies" not in resources(tpl, "AWS::IAM::Role")[role_ids[0]]["Properties"]
    found = []
    for res in resources(tpl, "AWS::IAM::ManagedPolicy").values():
        if {"Ref": role_ids[0]} in res["Properties"].get("Roles", []):
            found += statements(res["Properties"]["PolicyDocument"])
    return found


def _points_at_local_mrk(app: Synthesized, region: str, value: Any) -> bool:
    ref = stack_output_ref(value)
    if ref is None:
        return False
    keys_stack = app.stacks.keys[region]
    if (ref["StackName"], ref["Region"]) != (keys_stack.stack_name, region):
        return False
    target = output_value(app.raw(keys_stack), ref["OutputName"])
    return target["Fn::GetAtt"][0].startswith("RecordsKey") and target["Fn::GetAtt"][1] == "Arn"


def _local_table_arn(app: Synthesized, region: str, value: Any) -> bool:
    # With a configured account the ARN is a literal; account-agnostic it is a Fn::Join.
    text = (
        value
        if isinstance(value, str)
        else "".join(p if isinstance(p, str) else "ACCOUNT" for p in value["Fn::Join"][1])
    )
    return (
        text.startswith(f"arn:aws:dynamodb:{region}:")
        and text.endswith(f":table/{app.config.table_name}")
        and "*" not in text
    )


EXPECTED = {
    "Writer": ("kms:GenerateDataKey", "dynamodb:PutItem"),
    "Reader": ("kms:Decrypt", "dynamodb:GetItem"),
}
# The writer reads the stored version before its conditional write, and nothing else.
WRITER_VERSION_READ = {
    "ForAllValues:StringEquals": {"dynamodb:Attributes": ["id", "_version"]},
    "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
}


def test_roles_reach_only_the_local_key_and_table_replica(synthesized: Synthesized) -> None:
    app = synthesized
    for region, stack in app.stacks.functions.items():
        tpl = app.raw(stack)
        for kind, (kms_action, table_action) in EXPECTED.items():
            stmts = _role_statements(tpl, kind)
            kms = [s for s in stmts if any(a.startswith("kms:") for a in actions(s))]
            ddb = [s for s in stmts if any(a.startswith("dynamodb:") for a in actions(s))]
            assert len(kms) == 1 and actions(kms[0]) == {kms_action}, (region, kind)
            if kind == "Writer":
                reads = [s for s in ddb if "Condition" in s]
                assert len(reads) == 1 and actions(reads[0]) == {"dynamodb:GetItem"}, (region, reads)
                assert reads[0]["Condition"] == WRITER_VERSION_READ, reads[0]["Condition"]
                assert _local_table_arn(app, region, reads[0]["Resource"]), region
                stmts = [s for s in stmts if s is not reads[0]]
                ddb = [s for s in ddb if s is not reads[0]]
            assert len(ddb) == 1 and actions(ddb[0]) == {table_action}, (region, kind)
            assert _points_at_local_mrk(app, region, kms[0]["Resource"]), (region, kind)
            assert _local_table_arn(app, region, ddb[0]["Resource"]), (region, kind)
            others = [s for s in stmts if s not in kms and s not in ddb]
            for s in others:
                assert actions(s) <= {
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                }


def test_kms_statements_require_the_encryption_context_the_code_sends(synthesized: Synthesized) -> None:
    from record_crypto import settings  # noqa: F401 - the runtime contract must import without CDK
    from record_crypto.context import expected_context  # type: ignore[import-not-found]

    app = synthesized
    sent = expected_context(table=app.config.table_name, item_id=None)
    assert record_encryption_context(app.config.table_name) == sent
    for stack in app.stacks.functions.values():
        for kind in EXPECTED:
            kms = [s for s in _role_statements(app.raw(stack), kind) if any(a.startswith("kms:") for a in actions(s))]
            assert kms[0]["Condition"]["StringEquals"] == {f"kms:EncryptionContext:{k}": v for k, v in sent.items()}


def _is_wildcard(resource: Any) -> bool:
    if isinstance(resource, str):
        return "*" in resource
    if isinstance(resource, dict) and "Fn::Join" in resource:
        return any(isinstance(p, str) and "*" in p for p in resource["Fn::Join"][1])
    return False


def test_no_kms_or_dynamodb_statement_has_a_wildcard_resource(synthesized: Synthesized) -> None:
    app = synthesized
    for stack in app.stacks.all():
        for lid, doc in iam_policy_documents(app.raw(stack)):
            for stmt in statements(doc):
                if any(a.split(":")[0] in ("kms", "dynamodb") for a in actions(stmt)):
                    for res in as_list(stmt["Resource"]):
                        assert not _is_wildcard(res), (stack.stack_name, lid, stmt)
                    assert not any("*" in a for a in actions(stmt)), (stack.stack_name, lid, stmt)


def test_functions_runtime_logs_tracing_concurrency_and_environment(synthesized: Synthesized) -> None:
    app = synthesized
    # The runtime whose bytecode the bundle ships (cdk_constructs/lambda_bundle.py says why 3.13).
    runtime = lambda_bundle.RUNTIME
    for region, stack in app.stacks.functions.items():
        tpl = app.raw(stack)
        log_groups = resources(tpl, "AWS::Logs::LogGroup")
        for kind in EXPECTED:
            props = _function(tpl, kind)["Properties"]
            assert props["Runtime"] == runtime.name == f"python{lambda_bundle.PYTHON_VERSION}"
            assert props["TracingConfig"] == {"Mode": "Active"}
            assert props["ReservedConcurrentExecutions"] == app.config.reserved_concurrency
            group = props["LoggingConfig"]["LogGroup"]["Ref"]
            assert log_groups[group]["Properties"]["RetentionInDays"] == app.config.log_retention_days
            env = props["Environment"]["Variables"]
            assert env[ENV_TABLE_NAME] == app.config.table_name
            assert _points_at_local_mrk(app, region, env[ENV_MRK_ARN]), (region, kind)
