"""What the emulator does to each resource type on a stack update and a stack deletion, as
CloudFormation would (offline/emulator/provisioner.py, offline/emulator/resource_lifecycle.py), on small templates:
in place, replaced (UpdateReplacePolicy), deleted or retained (DeletionPolicy), and refused before
anything in the stack changes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_assembly.intrinsics import UnsupportedTemplate
from cloud_assembly.reader import CloudAssembly, StackArtifact
from offline.emulator.deployment import DeployedResource, DeployedStack, Deployment
from offline.emulator.provisioner import Provisioner
from offline.emulator.resource_lifecycle import StackOperationFailed
from offline.emulator.server import EmulatedAws

REGION = "us-east-2"
ACCOUNT = "123456789012"


def policy(*actions: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": list(actions),
                "Resource": "*",
            }
        ],
    }


def key(**props: Any) -> dict[str, Any]:
    return {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": policy("kms:*"), **props}}


def log_group(**attrs: Any) -> dict[str, Any]:
    props = attrs.pop("Properties", {"RetentionInDays": 30})
    return {"Type": "AWS::Logs::LogGroup", "Properties": props, **attrs}


def assembly(resources: dict[str, Any], name: str = "Demo") -> CloudAssembly:
    stack = StackArtifact(name, REGION, ACCOUNT, {"Resources": copy.deepcopy(resources)})
    return CloudAssembly(Path("."), {name: stack})


@pytest.fixture
def aws() -> Iterator[EmulatedAws]:
    with EmulatedAws(ACCOUNT) as emulated:
        yield emulated


@pytest.fixture
def provisioner(aws: EmulatedAws) -> Provisioner:
    return Provisioner(aws.session, aws.account, aws.endpoint_url, lambda _line: None)


def actions(changes: list[Any]) -> dict[str, str]:
    return {c.logical_id: c.action for c in changes}


def log_groups(aws: EmulatedAws) -> dict[str, Any]:
    return {g["logGroupName"]: g for g in aws.client("logs", REGION).describe_log_groups()["logGroups"]}


def test_a_key_is_updated_in_place(aws: EmulatedAws, provisioner: Provisioner) -> None:
    deployment = provisioner.deploy(assembly({"Key": key(EnableKeyRotation=True, RotationPeriodInDays=365)}))
    key_id = deployment.stacks["Demo"].resources["Key"].physical_id
    changed = key(EnableKeyRotation=False, Description="new", KeyPolicy=policy("kms:*", "kms:Decrypt"))
    changes = provisioner.apply(deployment, assembly({"Key": changed}))
    assert actions(changes) == {"Key": "update"} and "KeyPolicy" in changes[0].detail
    kms = aws.client("kms", REGION)
    assert deployment.stacks["Demo"].resources["Key"].physical_id == key_id, "same key, updated in place"
    assert (
        json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        == changed["Properties"]["KeyPolicy"]
    )
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False  # (moto keeps no period)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "new"


def test_an_immutable_key_property_fails_the_stack_before_anything_in_it_changes(
    aws: EmulatedAws, provisioner: Provisioner
) -> None:
    deployment = provisioner.deploy(assembly({"Key": key(), "Logs": log_group()}))
    with pytest.raises(StackOperationFailed, match=r"KeySpec of an existing KMS key"):
        provisioner.apply(
            deployment,
            assembly({"Key": key(KeySpec="RSA_2048"), "Logs": log_group(Properties={"RetentionInDays": 90})}),
        )
    assert deployment.stacks["Demo"].status == "UPDATE_ROLLBACK_COMPLETE"
    (group,) = log_groups(aws).values()
    assert group["retentionInDays"] == 30, "nothing in the stack changed"


def test_a_removed_resource_is_deleted_or_retained_by_its_deletion_policy(
    aws: EmulatedAws, provisioner: Provisioner
) -> None:
    deployment = provisioner.deploy(
        assembly({"Kept": log_group(DeletionPolicy="Retain"), "Gone": log_group(), "Stays": log_group()})
    )
    names = {lid: r.physical_id for lid, r in deployment.stacks["Demo"].resources.items()}
    changes = provisioner.apply(deployment, assembly({"Stays": log_group()}))
    assert actions(changes) == {"Kept": "retain", "Gone": "delete"}
    assert set(log_groups(aws)) == {names["Kept"], names["Stays"]}
    assert set(deployment.stacks["Demo"].resources) == {"Stays"}


@pytest.mark.parametrize("replace_policy", ["Retain", "Delete"])
def test_a_replacement_honours_the_update_replace_policy(
    aws: EmulatedAws, provisioner: Provisioner, replace_policy: str
) -> None:
    before = log_group(Properties={"LogGroupName": "/old"}, UpdateReplacePolicy=replace_policy)
    deployment = provisioner.deploy(assembly({"Logs": before}))
    after = log_group(Properties={"LogGroupName": "/new"}, UpdateReplacePolicy=replace_policy)
    changes = provisioner.apply(deployment, assembly({"Logs": after}))
    assert [c.action for c in changes] == ["replace", "retain" if replace_policy == "Retain" else "delete"]
    assert set(log_groups(aws)) == ({"/old", "/new"} if replace_policy == "Retain" else {"/new"})


def test_an_alias_is_retargeted_and_role_policies_change_in_place(aws: EmulatedAws, provisioner: Provisioner) -> None:
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": policy("sts:AssumeRole"),
            "Policies": [{"PolicyName": "inline", "PolicyDocument": policy("kms:Decrypt")}],
        },
    }
    managed = {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {"PolicyDocument": policy("kms:Decrypt"), "Roles": [{"Ref": "Role"}]},
    }
    alias = {"Type": "AWS::KMS::Alias", "Properties": {"AliasName": "alias/demo", "TargetKeyId": {"Ref": "One"}}}
    resources = {"One": key(), "Two": key(), "Alias": alias, "Role": role, "Managed": managed}
    deployment = provisioner.deploy(assembly(resources))
    changed = copy.deepcopy(resources)
    changed["Alias"]["Properties"]["TargetKeyId"] = {"Ref": "Two"}
    changed["Role"]["Properties"]["Policies"][0]["PolicyDocument"] = policy("kms:Encrypt")
    changed["Managed"]["Properties"]["PolicyDocument"] = policy("kms:GenerateDataKey")
    changes = provisioner.apply(deployment, assembly(changed))
    assert actions(changes) == {"Alias": "update", "Role": "update", "Managed": "update"}
    deployed = deployment.stacks["Demo"].resources
    kms, iam = aws.client("kms", REGION), aws.client("iam", REGION)
    (found,) = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/demo"]
    assert found["TargetKeyId"] == deployed["Two"].physical_id
    inline = iam.get_role_policy(RoleName=deployed["Role"].physical_id, PolicyName="inline")["PolicyDocument"]
    assert inline["Statement"][0]["Action"] == ["kms:Encrypt"]
    versions = iam.list_policy_versions(PolicyArn=deployed["Managed"].physical_id)["Versions"]
    assert len(versions) == 1 and versions[0]["IsDefaultVersion"], versions
    document = iam.get_policy_version(PolicyArn=deployed["Managed"].physical_id, VersionId=versions[0]["VersionId"])
    assert document["PolicyVersion"]["Document"]["Statement"][0]["Action"] == ["kms:GenerateDataKey"]


def test_a_changed_function_gets_a_new_definition(provisioner: Provisioner) -> None:
    function = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Handler": "reader.handler",
            "Runtime": "python3.14",
            "Role": "arn:aws:iam::123456789012:role/r",
            "Environment": {"Variables": {"A": "1"}},
        },
    }
    deployment = provisioner.deploy(assembly({"Fn": function}))
    changed = copy.deepcopy(function)
    changed["Properties"]["Environment"]["Variables"]["A"] = "2"
    changes = provisioner.apply(deployment, assembly({"Fn": changed}))
    assert actions(changes) == {"Fn": "update"}
    assert [f.environment for f in deployment.functions] == [{"A": "2"}]
    provisioner.apply(deployment, assembly({}))
    assert deployment.functions == []


def table(*regions: str, protected: bool = True, **attrs: Any) -> dict[str, Any]:
    replicas = [{"Region": r, "DeletionProtectionEnabled": protected} for r in regions]
    props = {
        "TableName": "t",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "Replicas": replicas,
    }
    return {"Type": "AWS::DynamoDB::GlobalTable", "Properties": props, **attrs}


@pytest.mark.parametrize(
    ("regions", "refusal"),
    [
        ((REGION, "us-west-1", "eu-west-1", "eu-central-1"), "one replica of a global table per update"),
        (("us-west-1",), "stack's own region us-east-2 cannot be removed"),
        ((REGION,), "deletion protection is on for that replica"),
    ],
)
def test_replica_changes_cloudformation_refuses(
    aws: EmulatedAws, provisioner: Provisioner, regions: tuple[str, ...], refusal: str
) -> None:
    deployment = provisioner.deploy(assembly({"Table": table(REGION, "us-west-1")}))
    with pytest.raises(StackOperationFailed, match=refusal):
        provisioner.apply(deployment, assembly({"Table": table(*regions)}))
    for region in (REGION, "us-west-1"):
        assert aws.client("dynamodb", region).list_tables()["TableNames"] == ["t"], "the table stays as it was"


def test_a_replica_joins_with_the_items_and_leaves_with_its_own(aws: EmulatedAws, provisioner: Provisioner) -> None:
    deployment = provisioner.deploy(assembly({"Table": table(REGION, protected=False)}))
    aws.client("dynamodb", REGION).put_item(TableName="t", Item={"id": {"S": "a"}})
    changes = provisioner.apply(deployment, assembly({"Table": table(REGION, "eu-west-1", protected=False)}))
    assert changes[0].detail == "replica eu-west-1 added, 1 items copied from us-east-2"
    assert aws.client("dynamodb", "eu-west-1").get_item(TableName="t", Key={"id": {"S": "a"}})["Item"]
    assert sorted(deployment.tables) == ["eu-west-1", REGION]
    provisioner.apply(deployment, assembly({"Table": table(REGION, protected=False)}))
    assert aws.client("dynamodb", "eu-west-1").list_tables()["TableNames"] == []
    assert sorted(deployment.tables) == [REGION]


def test_deleting_a_stack_whose_table_is_protected_fails_and_deletes_nothing(
    aws: EmulatedAws, provisioner: Provisioner
) -> None:
    deployment = provisioner.deploy(assembly({"Table": table(REGION, "us-west-1"), "Logs": log_group()}))
    with pytest.raises(StackOperationFailed, match="deletion protection is on"):
        provisioner.delete_stack("Demo", deployment)
    assert deployment.stacks["Demo"].status == "DELETE_FAILED"
    assert len(log_groups(aws)) == 1 and aws.client("dynamodb", "us-west-1").list_tables()["TableNames"] == ["t"]


def test_deleting_a_stack_retains_what_its_deletion_policy_keeps(aws: EmulatedAws, provisioner: Provisioner) -> None:
    deployment: Deployment = provisioner.deploy(
        assembly({"Table": table(REGION, "us-west-1", DeletionPolicy="Retain"), "Key": key(PendingWindowInDays=7)})
    )
    key_id = deployment.stacks["Demo"].resources["Key"].physical_id
    changes = provisioner.delete_stack("Demo", deployment)
    assert actions(changes) == {"Table": "retain", "Key": "delete"}
    assert "Demo" not in deployment.stacks
    assert aws.client("dynamodb", "us-west-1").list_tables()["TableNames"] == ["t"]
    meta = aws.client("kms", REGION).describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion", "KMS schedules, with the template's pending window"


def test_alarms_dashboards_and_topics_are_deleted_after_what_names_them(
    aws: EmulatedAws, provisioner: Provisioner
) -> None:
    """The signals' resource types (created by their own handlers): a stack deletion removes the
    alarm and the topic policy before the topic; a removed topic policy gives the topic SNS's
    default policy back."""
    sns, cloudwatch = aws.client("sns", REGION), aws.client("cloudwatch", REGION)
    topic = sns.create_topic(Name="alarms")["TopicArn"]
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy("sns:Publish")))
    cloudwatch.put_metric_alarm(
        AlarmName="errors",
        **{"Namespace": "AWS/Lambda", "MetricName": "Errors", "Statistic": "Sum", "Period": 60},
        **{"EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold"},
        AlarmActions=[topic],
    )
    cloudwatch.put_dashboard(DashboardName="board", DashboardBody=json.dumps({"widgets": []}))
    template = {
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "Policy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {"Topics": [{"Ref": "Topic"}]}},
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmActions": [{"Ref": "Topic"}]}},
            "Board": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {}},
        }
    }
    deployed = {
        "Topic": DeployedResource("Topic", "AWS::SNS::Topic", topic, {}, {}),
        "Policy": DeployedResource("Policy", "AWS::SNS::TopicPolicy", "Demo-Policy", {}, {"Topics": [topic]}),
        "Alarm": DeployedResource("Alarm", "AWS::CloudWatch::Alarm", "errors", {}, {}),
        "Board": DeployedResource("Board", "AWS::CloudWatch::Dashboard", "board", {}, {}),
    }
    stack = DeployedStack(StackArtifact("Demo", REGION, ACCOUNT, template), deployed, status="CREATE_COMPLETE")
    provisioner._delete_aws_sns_topicpolicy(stack, deployed["Policy"], Deployment(ACCOUNT, assembly({})))
    restored = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert restored["Statement"][0]["Condition"] == {"StringEquals": {"AWS:SourceOwner": ACCOUNT}}
    deployment = Deployment(ACCOUNT, assembly({}), stacks={"Demo": stack})
    order = [c.logical_id for c in provisioner.delete_stack("Demo", deployment)]
    assert order.index("Topic") > max(order.index("Policy"), order.index("Alarm")), order
    assert sns.list_topics()["Topics"] == []
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []
    assert cloudwatch.list_dashboards()["DashboardEntries"] == []


def test_a_type_without_an_update_handler_is_applied_again_when_its_api_upserts(aws: EmulatedAws) -> None:
    """No _update_ handler: the change is made by creating again; when that lands on the same
    physical resource (PutDashboard by name) nothing is deleted."""

    class WithDashboards(Provisioner):
        def _create_aws_cloudwatch_dashboard(self, stack: Any, lid: str, p: dict[str, Any], d: Any) -> Any:
            self.client("cloudwatch", stack.region).put_dashboard(DashboardName="b", DashboardBody=p["DashboardBody"])
            return "b", {}

    provisioner = WithDashboards(aws.session, aws.account, aws.endpoint_url, lambda _line: None)
    board = {"Type": "AWS::CloudWatch::Dashboard", "Properties": {"DashboardBody": json.dumps({"widgets": []})}}
    deployment = provisioner.deploy(assembly({"Board": board}))
    changed = copy.deepcopy(board)
    changed["Properties"]["DashboardBody"] = json.dumps(
        {"widgets": [{"type": "text", "properties": {"markdown": "x"}}]}
    )
    (change,) = provisioner.apply(deployment, assembly({"Board": changed}))
    assert (change.action, change.detail) == ("update", "applied again to the same resource")
    body = aws.client("cloudwatch", REGION).get_dashboard(DashboardName="b")["DashboardBody"]
    assert json.loads(body)["widgets"][0]["type"] == "text"


def test_an_assembly_for_another_account_is_refused(provisioner: Provisioner) -> None:
    deployment = provisioner.deploy(assembly({"Logs": log_group()}))
    other = assembly({"Logs": log_group(Properties={"RetentionInDays": 90})})
    other.stacks["Demo"].account = "111111111111"
    with pytest.raises(UnsupportedTemplate, match="for account 111111111111; this emulator serves 123456789012"):
        provisioner.apply(deployment, other)


def parameter(name: str, value: str) -> dict[str, Any]:
    return {"Type": "AWS::SSM::Parameter", "Properties": {"Name": name, "Type": "String", "Value": value}}


def test_a_parameter_is_created_updated_in_place_replaced_on_a_new_name_and_deleted(
    aws: EmulatedAws, provisioner: Provisioner
) -> None:
    """The discovery parameters (README "Discovery"): a new value in place, a new name replaces it
    (the new one first), a removed one is deleted; a name already taken fails the create."""
    ssm = aws.client("ssm", REGION)

    def values() -> dict[str, str]:
        return {p["Name"]: p["Value"] for p in ssm.get_parameters_by_path(Path="/D", Recursive=True)["Parameters"]}

    deployment = provisioner.deploy(assembly({"Key": parameter("/D/r/key", "a"), "Table": parameter("/D/r/t", "t")}))
    assert values() == {"/D/r/key": "a", "/D/r/t": "t"}
    changes = provisioner.apply(
        deployment, assembly({"Key": parameter("/D/r/key", "b"), "Table": parameter("/D/r/table", "t")})
    )
    done = [(c.logical_id, c.action) for c in changes]
    assert done == [("Key", "update"), ("Table", "replace"), ("Table", "delete")], done
    assert values() == {"/D/r/key": "b", "/D/r/table": "t"}
    provisioner.apply(deployment, assembly({"Key": parameter("/D/r/key", "b")}))
    assert values() == {"/D/r/key": "b"}
    with pytest.raises(Exception, match="ParameterAlreadyExists"):
        provisioner.deploy(assembly({"Again": parameter("/D/r/key", "c")}, name="Other"))
    provisioner.delete_stack("Demo", deployment)
    assert values() == {}
