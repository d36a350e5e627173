"""The signals as synthesized: every alarm watches a metric that exists (the functions' own metric
lines, read from a real handler run, or an AWS service metric of this deployment); each region's
alarms notify its own encrypted topic, whose key only this deployment's alarms may use; one
dashboard, in the primary region."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import pytest

from cdk_constructs.signals import audit_alarm_specs, region_alarm_specs
from cloud_assembly.intrinsics import Resolver
from lambda_src.record_crypto.observability import NAMESPACE
from offline.emulator.emf import extract
from offline.verification.signals import cloudwatch_may_use
from policy_engine import Caller, Request, authorize
from tests.infra.helpers import resources, statements
from tests.infra.synth import ACCOUNT, Synthesized
from tests.runtime.conftest import PRIMARY, REPLICA, TABLE, TwoRegions, aws, sample_record  # noqa: F401

EmittedMetric = tuple[str, str, tuple[tuple[str, str], ...]]


def _alarms(tpl: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(tpl, "AWS::CloudWatch::Alarm").values()]


def _dims(alarm: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(
        sorted(
            (d["Name"], json.dumps(d["Value"]) if isinstance(d["Value"], dict) else d["Value"])
            for d in alarm.get("Dimensions", [])
        )
    )


def _resolve(stack_name: str, region: str, value: Any, physical: dict[str, str] | None = None) -> Any:
    ids = physical or {}
    return Resolver(
        stack_name=stack_name,
        region=region,
        account=ACCOUNT,
        physical_ids=ids,
        attributes={lid: {"Arn": arn} for lid, arn in ids.items()},
        stack_output=lambda *_: "unresolved",
    ).resolve(value)


@pytest.fixture
def emitted(aws: TwoRegions, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> set[EmittedMetric]:  # noqa: F811
    """The metrics the real handlers emit: a write, a read, and a refused (tampered) read."""
    out: set[EmittedMetric] = set()

    def run(module: str, region: str, event: dict[str, Any]) -> dict[str, Any]:
        for name, value in aws.env(region).items():
            monkeypatch.setenv(name, value)
        sys.modules.pop(module, None)
        capsys.readouterr()
        result = importlib.import_module(module).handler(event, None)
        out.update((d.namespace, d.name, d.dimensions) for d in extract(capsys.readouterr().out.splitlines()))
        sys.modules.pop(module, None)
        return result

    assert run("writer", PRIMARY, {"id": "s-1", "record": sample_record("s")})["ok"]
    aws.replicate("s-1")
    assert run("reader", REPLICA, {"id": "s-1"})["ok"]
    item = aws.raw_item(REPLICA, "s-1")
    assert item is not None
    aws.put_raw_item(REPLICA, {**item, "country": {"S": "XX"}})
    assert run("reader", REPLICA, {"id": "s-1"})["error"]["type"] == "TamperedRecord"
    return out


def test_every_alarm_on_our_namespace_watches_a_metric_the_handlers_emit(
    synthesized: Synthesized, emitted: set[EmittedMetric]
) -> None:
    assert synthesized.config.table_name == TABLE, "the handlers run against the same table name"
    watched = 0
    for stack in synthesized.stacks.functions.values():
        for alarm in _alarms(synthesized.raw(stack)):
            if alarm["Namespace"] != NAMESPACE:
                continue
            watched += 1
            key = (alarm["Namespace"], alarm["MetricName"], _dims(alarm))
            assert key in emitted, f"{alarm['AlarmName']} watches {key}, which no handler emits"
    assert watched == 4 * len(synthesized.config.regions)


def test_each_region_has_its_alarms_notifying_its_own_encrypted_topic(synthesized: Synthesized) -> None:
    config = synthesized.config
    for region, stack in synthesized.stacks.functions.items():
        tpl = synthesized.raw(stack)
        alarms = _alarms(tpl)
        specs = region_alarm_specs(
            prefix=config.stack_prefix, region=region, regions=config.regions, table_name=config.table_name
        ) + audit_alarm_specs(config.stack_prefix, region)
        assert sorted(a["AlarmName"] for a in alarms) == sorted(s.name for s in specs)
        assert len(alarms) == 9 + 2 * (len(config.regions) - 1)
        ((topic_id, topic),) = resources(tpl, "AWS::SNS::Topic").items()
        key_ref = topic["Properties"]["KmsMasterKeyId"]
        assert resources(tpl, "AWS::KMS::Key")[key_ref["Fn::GetAtt"][0]]["Properties"]["EnableKeyRotation"] is True
        for alarm in alarms:
            assert alarm["AlarmActions"] == [{"Ref": topic_id}] == alarm["OKActions"], alarm["AlarmName"]
            assert alarm["TreatMissingData"] == "notBreaching"
            assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            if alarm["Namespace"] == "AWS/Lambda":
                ((dimension,),) = [alarm["Dimensions"]]
                assert dimension["Name"] == "FunctionName"
                assert dimension["Value"]["Ref"] in resources(tpl, "AWS::Lambda::Function")
            if alarm["Namespace"] == "AWS/DynamoDB":  # in the source region, toward every other one
                dims = dict(_dims(alarm))
                assert dims["TableName"] == config.table_name and dims["ReceivingRegion"] != region
        receiving = {dict(_dims(a))["ReceivingRegion"] for a in alarms if a["Namespace"] == "AWS/DynamoDB"}
        assert receiving == set(config.regions) - {region}
        security = [a for a in alarms if a["MetricName"] == "SecurityRefusals"]
        assert len(security) == 2 and all(a["Threshold"] == 1 and a["EvaluationPeriods"] == 1 for a in security)


def _topic_and_key(synthesized: Synthesized, region: str) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    stack = synthesized.stacks.functions[region]
    tpl = synthesized.raw(stack)
    (key,) = [r for lid, r in resources(tpl, "AWS::KMS::Key").items() if lid.startswith("AlarmTopic")]
    key_arn = f"arn:aws:kms:{region}:{ACCOUNT}:key/alarm-topic-key"
    topic_arn = f"arn:aws:sns:{region}:{ACCOUNT}:{synthesized.config.stack_prefix}-alarms"
    policy = _resolve(stack.stack_name, region, key["Properties"]["KeyPolicy"])
    ((topic_policy,),) = [[r["Properties"] for r in resources(tpl, "AWS::SNS::TopicPolicy").values()]]
    return key_arn, topic_arn, policy, topic_policy


def test_only_this_deployments_alarms_of_the_region_may_use_the_topic_key(default_app: Synthesized) -> None:
    region, prefix = REPLICA, default_app.config.stack_prefix
    key_arn, topic_arn, policy, _ = _topic_and_key(default_app, region)
    own = f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{prefix}-{region}-reader-security-refusals"
    assert cloudwatch_may_use(policy, key_arn, topic_arn, own).allowed
    # A confused deputy: another deployment's alarm, an alarm of another region or account, another topic.
    for alarm, topic in (
        (f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:Other-{region}-x", topic_arn),
        (f"arn:aws:cloudwatch:{PRIMARY}:{ACCOUNT}:alarm:{prefix}-{region}-x", topic_arn),
        (f"arn:aws:cloudwatch:{region}:999999999999:alarm:{prefix}-{region}-x", topic_arn),
        (own, f"arn:aws:sns:{region}:{ACCOUNT}:someone-elses-topic"),
    ):
        assert not cloudwatch_may_use(policy, key_arn, topic, alarm).allowed, (alarm, topic)


def test_the_functions_roles_cannot_use_the_topic_key_or_publish(default_app: Synthesized) -> None:
    """An attacker holding a function's role (it can use the records key) gains nothing here."""
    region = REPLICA
    key_arn, topic_arn, policy, topic_policy = _topic_and_key(default_app, region)
    stack = default_app.stacks.functions[region]
    tpl = default_app.raw(stack)
    for role_id in resources(tpl, "AWS::IAM::Role"):
        role_arn = f"arn:aws:iam::{ACCOUNT}:role/{role_id}"
        physical = {lid: f"arn:aws:other:{region}:{ACCOUNT}:{lid}" for lid in tpl["Resources"]}
        physical |= {lid: topic_arn for lid in resources(tpl, "AWS::SNS::Topic")}
        documents = [
            (lid, _resolve(stack.stack_name, region, r["Properties"]["PolicyDocument"], physical))
            for lid, r in resources(tpl, "AWS::IAM::ManagedPolicy").items()
            if {"Ref": role_id} in r["Properties"].get("Roles", [])
        ]
        caller = Caller(ACCOUNT, arn=role_arn)
        for action in ("kms:Decrypt", "kms:GenerateDataKey"):
            decision = authorize(
                Request(caller, action, key_arn, {"kms:CallerAccount": ACCOUNT}),
                identity_policies=documents,
                resource_policy=("key policy", policy),
                resource_policy_required=True,
            )
            assert not decision.allowed, (role_id, action, decision.reason)
        topic_doc = _resolve(stack.stack_name, region, topic_policy["PolicyDocument"], physical)
        decision = authorize(
            Request(caller, "sns:Publish", topic_arn, {"aws:SecureTransport": "true"}),
            identity_policies=documents,
            resource_policy=("topic policy", topic_doc),
        )
        assert not decision.allowed, (role_id, decision.reason)


def test_the_topic_refuses_requests_without_tls(default_app: Synthesized) -> None:
    _, _, _, topic_policy = _topic_and_key(default_app, REPLICA)
    (deny,) = [s for s in statements(topic_policy["PolicyDocument"]) if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_one_dashboard_in_the_primary_region_shows_every_region_and_alarm(synthesized: Synthesized) -> None:
    config = synthesized.config
    dashboards = {
        region: resources(synthesized.raw(stack), "AWS::CloudWatch::Dashboard")
        for region, stack in synthesized.stacks.functions.items()
    }
    assert [r for r, found in dashboards.items() if found] == [config.primary_region]
    ((dashboard,),) = [list(dashboards[config.primary_region].values())]
    body = json.dumps(_resolve("dashboard", config.primary_region, dashboard["Properties"]["DashboardBody"]))
    for region in config.regions:
        assert f'\\"region\\":\\"{region}\\"' in body, region
        for spec in region_alarm_specs(
            prefix=config.stack_prefix, region=region, regions=config.regions, table_name=config.table_name
        ):
            assert f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{spec.name}" in body, spec.name
