"""MrkToolkitChecks: each rule on a compliant and a non-compliant stack, then the whole app.

Each family of rules gets one small app with a ``Good`` and a ``Bad`` stack (plain L1 resources),
synthesized once per module; the pack runs over the synthesized tree (``validate_scope``).
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_constructs.nag_rules import MrkToolkitChecks, key_region, role_kind
from tests.infra.synth import context_for, synthesize, temp_outdir

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
FOUR_REGIONS = {"primaryRegion": "us-east-2", "replicaRegions": ["us-west-1", "eu-west-1", "ap-southeast-2"]}

Findings = dict[str, list[str]]


def env(region: str) -> cdk.Environment:
    return cdk.Environment(account=ACCOUNT, region=region)


def new_app() -> cdk.App:
    return cdk.App(
        context={"@aws-cdk/core:defaultCrossStackReferences": "weak"},
        outdir=temp_outdir("mrk-toolkit-nag-"),
    )


def run_pack(app: cdk.App, **kwargs: Any) -> Findings:
    """Rule id (with finding) -> construct paths, after synth (so cross-stack values are resolved)."""
    app.synth()
    report = MrkToolkitChecks(**kwargs).validate_scope(app)
    return {v.rule_name: sorted(r.construct_path for r in v.violating_resources) for v in report.violations}


def on(findings: Findings, prefix: str) -> dict[str, list[str]]:
    """The findings on constructs under ``prefix`` (a stack name)."""
    out = {rule: [p for p in paths if p.startswith(prefix + "/")] for rule, paths in findings.items()}
    return {rule: paths for rule, paths in out.items() if paths}


def key_policy(*statements: dict[str, Any]) -> dict[str, Any]:
    admin = {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:Describe*", "Resource": "*"}
    return {"Version": "2012-10-17", "Statement": [admin, *statements]}


def replica(region: str, key: Any, *, pitr: bool = True, protect: bool = True) -> Any:
    return dynamodb.CfnGlobalTable.ReplicaSpecificationProperty(
        region=region,
        deletion_protection_enabled=protect,
        point_in_time_recovery_specification=dynamodb.CfnGlobalTable.PointInTimeRecoverySpecificationProperty(
            point_in_time_recovery_enabled=pitr
        ),
        sse_specification=dynamodb.CfnGlobalTable.ReplicaSSESpecificationProperty(kms_master_key_id=key),
    )


def global_table(stack: cdk.Stack, replicas: list[Any]) -> dynamodb.CfnGlobalTable:
    return dynamodb.CfnGlobalTable(
        stack,
        "Table",
        attribute_definitions=[
            dynamodb.CfnGlobalTable.AttributeDefinitionProperty(attribute_name="id", attribute_type="S")
        ],
        key_schema=[dynamodb.CfnGlobalTable.KeySchemaProperty(attribute_name="id", key_type="HASH")],
        billing_mode="PAY_PER_REQUEST",
        stream_specification=dynamodb.CfnGlobalTable.StreamSpecificationProperty(stream_view_type="NEW_AND_OLD_IMAGES"),
        sse_specification=dynamodb.CfnGlobalTable.SSESpecificationProperty(sse_enabled=True, sse_type="KMS"),
        replicas=replicas,
    )


# -- GT1-3: global table replicas ------------------------------------------------------------------
@pytest.fixture(scope="module")
def table_findings() -> Findings:
    app = new_app()
    east_keys = cdk.Stack(app, "KeysEast", env=env("us-east-2"))
    west_keys = cdk.Stack(app, "KeysWest", env=env("us-west-1"))
    east_key = kms.CfnKey(east_keys, "Key", key_policy=key_policy())
    west_key = kms.CfnKey(west_keys, "Key", key_policy=key_policy())
    good = cdk.Stack(app, "Good", env=env("us-east-2"))
    global_table(good, [replica("us-east-2", east_key.attr_arn), replica("us-west-1", west_key.attr_arn)])
    # An ARN and an alias ARN work as well as a cross-stack reference.
    good_literal = cdk.Stack(app, "GoodLiteral", env=env("us-east-2"))
    global_table(
        good_literal,
        [
            replica("us-east-2", f"arn:aws:kms:us-east-2:{ACCOUNT}:key/k1"),
            replica("us-west-1", f"arn:aws:kms:us-west-1:{ACCOUNT}:alias/records-table"),
        ],
    )
    bad = cdk.Stack(app, "Bad", env=env("us-east-2"))
    global_table(
        bad,
        [
            replica("us-east-2", east_key.attr_arn, protect=False),
            # us-west-1's replica is encrypted with us-east-2's key, without PITR.
            replica("us-west-1", east_key.attr_arn, pitr=False),
            replica("eu-west-1", f"arn:aws:kms:us-east-2:{ACCOUNT}:key/k1"),
        ],
    )
    return run_pack(app)


def test_replicas_with_pitr_protection_and_own_region_keys_pass(table_findings: Findings) -> None:
    assert on(table_findings, "Good") == {}
    assert on(table_findings, "GoodLiteral") == {}


def test_replica_without_pitr_is_a_finding(table_findings: Findings) -> None:
    assert on(table_findings, "Bad")["MrkToolkit-GT1[us-west-1]"] == ["Bad/Table"]
    assert not any(r.startswith("MrkToolkit-GT1[") and r != "MrkToolkit-GT1[us-west-1]" for r in table_findings)


def test_replica_without_deletion_protection_is_a_finding(table_findings: Findings) -> None:
    assert [r for r in table_findings if r.startswith("MrkToolkit-GT2")] == ["MrkToolkit-GT2[us-east-2]"]


def test_replica_encrypted_with_another_regions_key_is_a_finding(table_findings: Findings) -> None:
    gt3 = {r: p for r, p in table_findings.items() if r.startswith("MrkToolkit-GT3")}
    assert gt3 == {"MrkToolkit-GT3[us-west-1]": ["Bad/Table"], "MrkToolkit-GT3[eu-west-1]": ["Bad/Table"]}


@pytest.mark.parametrize(
    ("value", "region"),
    [
        (f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k", "eu-west-1"),
        ({"Fn::GetStackOutput": {"StackName": "K", "Region": "ap-southeast-2", "OutputName": "O"}}, "ap-southeast-2"),
        ({"Fn::Join": ["", ["arn:aws:kms:", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}, ":key/k"]]}, "R"),
        ({"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/k"}, "R"),
        ({"Fn::GetAtt": ["LocalKey", "Arn"]}, "R"),
        ({"Fn::ImportValue": "key-arn"}, "R"),
        ("alias/records-table", "<region-local>"),
        ({"Fn::GetAtt": ["ExportsReader", "/cdk/exports/x"]}, None),  # strong reference: origin unknown
        ({"Fn::Join": ["", ["arn:aws:kms:", {"Ref": "Region"}, ":1:key/k"]]}, None),
        ({"Ref": "KeyParameter"}, None),
    ],
)
def test_key_region_reads_every_form_of_key_reference(value: Any, region: str | None) -> None:
    resources = {"LocalKey": {"Type": "AWS::KMS::Key"}, "ExportsReader": {"Type": "Custom::CrossRegionExportReader"}}
    assert key_region(value, "R", resources) == region


# -- KMS1-3: key policies, replica keys, replication scope ----------------------------------------
REPLICATE = {"Sid": "Replicate", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:ReplicateKey"}


def replicate(operator: str, regions: Any) -> dict[str, Any]:
    return {**REPLICATE, "Resource": "*", "Condition": {operator: {"kms:ReplicaRegion": regions}}}


@pytest.fixture(scope="module")
def key_findings() -> Findings:
    app = new_app()
    good = cdk.Stack(app, "Good", env=env("us-east-2"))
    primary = kms.CfnKey(
        good, "Primary", multi_region=True, key_policy=key_policy(replicate("StringEquals", ["us-west-1"]))
    )
    good_west = cdk.Stack(app, "GoodWest", env=env("us-west-1"))
    kms.CfnReplicaKey(
        good_west, "Replica", primary_key_arn=primary.attr_arn, key_policy=key_policy(), pending_window_in_days=30
    )
    kms.CfnKey(good_west, "NotMultiRegion", key_policy=key_policy({**REPLICATE, "Resource": "*"}))

    bad = cdk.Stack(app, "Bad", env=env("us-east-2"))
    kms.CfnKey(bad, "NoCondition", multi_region=True, key_policy=key_policy({**REPLICATE, "Resource": "*"}))
    kms.CfnKey(bad, "Wildcard", multi_region=True, key_policy=key_policy(replicate("StringLike", ["us-*"])))
    kms.CfnKey(bad, "NotDeployed", multi_region=True, key_policy=key_policy(replicate("StringEquals", "eu-west-1")))
    everything = {"Sid": "KmsStar", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
    kms.CfnKey(bad, "KmsStar", multi_region=True, key_policy={"Statement": [everything]})
    kms.CfnKey(bad, "DefaultPolicy", multi_region=True)
    bad_west = cdk.Stack(app, "BadWest", env=env("us-west-1"))
    anyone = {"Sid": "Anyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}
    kms.CfnReplicaKey(
        bad_west, "Open", primary_key_arn=primary.attr_arn, key_policy=key_policy(anyone), pending_window_in_days=7
    )
    kms.CfnReplicaKey(bad_west, "NoWindow", primary_key_arn=primary.attr_arn, key_policy=key_policy())
    kms.CfnReplicaKey(bad_west, "NoPolicy", primary_key_arn=primary.attr_arn, key_policy={}, pending_window_in_days=30)
    kms.CfnKey(bad_west, "OpenKey", key_policy={"Statement": [{**anyone, "Principal": "*"}]})
    return run_pack(app)


def test_compliant_keys_pass(key_findings: Findings) -> None:
    assert on(key_findings, "Good") == {}
    assert on(key_findings, "GoodWest") == {}


def test_wildcard_principal_or_missing_policy_is_a_finding(key_findings: Findings) -> None:
    assert {r: p for r, p in key_findings.items() if r.startswith("MrkToolkit-KMS1")} == {
        "MrkToolkit-KMS1[Anyone]": ["BadWest/Open", "BadWest/OpenKey"],
        "MrkToolkit-KMS1[NoKeyPolicy]": ["BadWest/NoPolicy"],
    }


def test_replica_key_without_pending_window_is_a_finding(key_findings: Findings) -> None:
    assert {r: p for r, p in key_findings.items() if r.startswith("MrkToolkit-KMS2")} == {
        "MrkToolkit-KMS2[Missing]": ["BadWest/NoWindow"]
    }


def test_replication_not_limited_to_explicit_deployed_regions_is_a_finding(key_findings: Findings) -> None:
    assert {r: p for r, p in key_findings.items() if r.startswith("MrkToolkit-KMS3")} == {
        "MrkToolkit-KMS3[Replicate]": ["Bad/NoCondition", "Bad/NotDeployed", "Bad/Wildcard"],
        "MrkToolkit-KMS3[KmsStar]": ["Bad/KmsStar"],
        "MrkToolkit-KMS3[DefaultKeyPolicy]": ["Bad/DefaultPolicy"],
    }


def test_configured_replica_regions_override_the_deployed_ones() -> None:
    app = new_app()
    stack = cdk.Stack(app, "Keys", env=env("us-east-2"))
    kms.CfnKey(stack, "Primary", multi_region=True, key_policy=key_policy(replicate("StringEquals", ["eu-west-1"])))
    assert run_pack(app) == {}  # no replica key in the app: explicit regions suffice
    app = new_app()
    stack = cdk.Stack(app, "Keys", env=env("us-east-2"))
    kms.CfnKey(stack, "Primary", multi_region=True, key_policy=key_policy(replicate("StringEquals", ["eu-west-1"])))
    assert run_pack(app, replica_regions=["us-west-1"]) == {"MrkToolkit-KMS3[Replicate]": ["Keys/Primary"]}


# -- IAM1-2: identity policies and reader/writer separation -----------------------------------------
KEY_ARN = f"arn:aws:kms:us-east-2:{ACCOUNT}:key/mrk-1"
TABLE_ARN = f"arn:aws:dynamodb:us-east-2:{ACCOUNT}:table/records"


def role(stack: cdk.Stack, construct_id: str, path: str | None, *statements: iam.PolicyStatement) -> iam.Role:
    r = iam.Role(stack, construct_id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), path=path)
    iam.ManagedPolicy(stack, f"{construct_id}Policy", roles=[r], statements=list(statements))
    return r


def allow(sid: str, actions: list[str], resources: list[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid=sid, actions=actions, resources=resources)


@pytest.fixture(scope="module")
def iam_findings() -> Findings:
    app = new_app()
    good = cdk.Stack(app, "Good", env=env("us-east-2"))
    role(good, "Writer", "/MrkToolkit/writer/", allow("Key", ["kms:GenerateDataKey"], [KEY_ARN]))
    role(good, "Reader", "/MrkToolkit/reader/", allow("Key", ["kms:Decrypt"], [KEY_ARN]))
    role(good, "Tracing", None, allow("XRay", ["xray:PutTraceSegments"], ["*"]))
    kms.CfnKey(
        good,
        "Key",
        key_policy=key_policy(
            {
                "Sid": "Readers",
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/*"}},
            }
        ),
    )

    bad = cdk.Stack(app, "Bad", env=env("us-east-2"))
    role(
        bad,
        "Any",
        None,
        allow("AllKeys", ["kms:Decrypt"], ["*"]),
        allow("Tables", ["dynamodb:*"], [f"arn:aws:dynamodb:us-east-2:{ACCOUNT}:table/*"]),
    )
    role(bad, "Reader", "/MrkToolkit/reader/", allow("Key", ["kms:Decrypt", "kms:GenerateDataKey*"], [KEY_ARN]))
    role(bad, "Writer", "/MrkToolkit/writer/", allow("Key", ["kms:*"], [KEY_ARN]))
    # The finder's role sits under the reader's path (/<prefix>/reader/finder/): a reader, IAM2 checks it.
    role(bad, "Finder", "/MrkToolkit/reader/finder/", allow("Key", ["kms:Encrypt"], [KEY_ARN]))
    # No IAM path: told apart by its construct id.
    iam.Role(
        Construct(Construct(bad, "Records"), "Reader"),
        "Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        inline_policies={"Inline": iam.PolicyDocument(statements=[allow("Enc", ["kms:Encrypt"], [KEY_ARN])])},
    )
    iam.Role(
        bad,
        "AwsManagedWriter",
        path="/MrkToolkit/writer/",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AWSKeyManagementServicePowerUser")],
    )
    kms.CfnKey(
        bad,
        "Key",
        key_policy=key_policy(
            {
                "Sid": "ReadersGenerate",
                "Effect": "Allow",
                "Principal": {"AWS": ROOT},
                "Action": "kms:GenerateDataKey",
                "Resource": "*",
                "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/*"}},
            }
        ),
    )
    return run_pack(app)


def test_scoped_identity_policies_and_separated_roles_pass(iam_findings: Findings) -> None:
    assert on(iam_findings, "Good") == {}


def test_kms_or_dynamodb_on_a_wildcard_resource_is_a_finding(iam_findings: Findings) -> None:
    assert {r: p for r, p in iam_findings.items() if r.startswith("MrkToolkit-IAM1")} == {
        "MrkToolkit-IAM1[AllKeys::kms:Decrypt]": ["Bad/AnyPolicy/Resource"],
        "MrkToolkit-IAM1[Tables::dynamodb:*]": ["Bad/AnyPolicy/Resource"],
    }


def test_reader_that_can_encrypt_or_writer_that_can_decrypt_is_a_finding(iam_findings: Findings) -> None:
    iam2 = {r: p for r, p in iam_findings.items() if r.startswith("MrkToolkit-IAM2")}
    assert iam2 == {
        "MrkToolkit-IAM2[reader::kms:GenerateDataKey]": ["Bad/ReaderPolicy/Resource"],
        "MrkToolkit-IAM2[reader::kms:GenerateDataKeyWithoutPlaintext]": ["Bad/ReaderPolicy/Resource"],
        "MrkToolkit-IAM2[writer::kms:Decrypt]": ["Bad/WriterPolicy/Resource"],
        "MrkToolkit-IAM2[reader::kms:Encrypt]": ["Bad/FinderPolicy/Resource", "Bad/Records/Reader/Role/Resource"],
        "MrkToolkit-IAM2[ReadersGenerate::reader::kms:GenerateDataKey]": ["Bad/Key"],
        "MrkToolkit-IAM2[writer::ManagedPolicy::AWSKeyManagementServicePowerUser]": ["Bad/AwsManagedWriter/Resource"],
    }


@pytest.mark.parametrize(
    ("path", "construct_path", "kind"),
    [
        ("/MrkToolkit/reader/", "S/Records/Writer/Role", "reader"),  # the IAM path wins
        ("/Other/writer/", "S/X/Role", "writer"),
        (None, "S/Records/Reader/Role/Resource", "reader"),
        ("/", "S/Records/Tracing/Role", None),
        ("/MrkToolkit/reader/finder/", "S/Functions/Finder/Role", "reader"),  # under the reader's path
    ],
)
def test_role_kind_from_iam_path_then_construct_path(path: str | None, construct_path: str, kind: str | None) -> None:
    assert role_kind(path, construct_path) == kind


# -- as a validation plugin, and on the toolkit's own app ----------------------------------------------
def bad_table_app() -> tuple[cdk.App, dynamodb.CfnGlobalTable]:
    app = new_app()
    stack = cdk.Stack(app, "Bad", env=env("us-east-2"))
    table = global_table(stack, [replica("us-east-2", f"arn:aws:kms:us-east-2:{ACCOUNT}:key/k", pitr=False)])
    cdk.Validations.of(app).add_plugins(MrkToolkitChecks(app))
    return app, table


def test_plugin_fails_synth_on_a_finding_and_honours_a_scoped_acknowledgement() -> None:
    app, _ = bad_table_app()
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    app, table = bad_table_app()
    cdk.Validations.of(table).acknowledge(
        cdk.Acknowledgment(id="MrkToolkit::MrkToolkit-GT1[us-east-2]", reason="test: a scratch table, no data")
    )
    app.synth()


@pytest.mark.parametrize("overrides", [{}, FOUR_REGIONS], ids=["default", "four-region"])
def test_toolkit_app_has_zero_findings(overrides: dict[str, Any]) -> None:
    synthesized = synthesize(context_for(**overrides))
    report = MrkToolkitChecks(verbose=True).validate_scope(synthesized.stacks.table.node.root)
    assert [(v.rule_name, v.description) for v in report.violations] == []
    assert report.success


# -- the audit rules and trail ---------------------------------------------------------------------
def _use_pattern(*names: Any) -> dict[str, Any]:
    return {"source": ["aws.kms"], "detail": {"eventName": list(names)}}


@pytest.fixture(scope="module")
def audit_findings() -> Findings:
    app = new_app()
    good, bad = cdk.Stack(app, "Good", env=env("us-east-2")), cdk.Stack(app, "Bad", env=env("us-east-2"))
    all_events = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    events.CfnRule(good, "Uses", event_pattern=_use_pattern("Decrypt"), state=all_events)
    events.CfnRule(good, "Admin", event_pattern=_use_pattern("PutKeyPolicy"), state="ENABLED")
    events.CfnRule(bad, "Uses", event_pattern=_use_pattern("PutKeyPolicy", "Decrypt"), state="ENABLED")
    events.CfnRule(bad, "Describe", event_pattern=_use_pattern("DescribeKey"))
    events.CfnRule(bad, "Filter", event_pattern=_use_pattern({"anything-but": ["PutKeyPolicy"]}), state="ENABLED")
    key = kms.CfnKey(good, "Key", key_policy=key_policy(), enable_key_rotation=True)
    cloudtrail.CfnTrail(
        good,
        "Trail",
        is_logging=True,
        s3_bucket_name="b",
        is_multi_region_trail=True,
        enable_log_file_validation=True,
        include_global_service_events=True,
        kms_key_id=key.attr_arn,
    )
    cloudtrail.CfnTrail(bad, "Trail", is_logging=True, s3_bucket_name="b", is_multi_region_trail=False)
    return run_pack(app)


def test_rules_receiving_read_only_events_and_a_complete_trail_pass(audit_findings: Findings) -> None:
    assert on(audit_findings, "Good") == {}


def test_a_rule_that_cannot_receive_its_read_only_events_is_a_finding(audit_findings: Findings) -> None:
    bad = on(audit_findings, "Bad")
    assert bad["MrkToolkit-AUD1[Decrypt]"] == ["Bad/Uses"]
    assert bad["MrkToolkit-AUD1[DescribeKey]"] == ["Bad/Describe"]
    assert bad["MrkToolkit-AUD1[Filter]"] == ["Bad/Filter"]


def test_a_single_region_trail_without_validation_or_key_is_a_finding(audit_findings: Findings) -> None:
    bad = on(audit_findings, "Bad")
    for missing in ("IsMultiRegionTrail", "EnableLogFileValidation", "IncludeGlobalServiceEvents", "KMSKeyId"):
        assert bad[f"MrkToolkit-AUD2[{missing}]"] == ["Bad/Trail"], missing
