"""MrkToolkitChecks on Aurora global databases (RDS1-4), secrets and database permissions (IAM1),
a writer's kms:Decrypt through Secrets Manager (IAM2): a compliant and a non-compliant case each,
then the toolkit's Aurora app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds

from cdk_constructs.nag_rules import MrkToolkitChecks
from tests.infra.synth import context_for, synthesize
from tests.review.test_nag_rules import ACCOUNT, Findings, allow, env, key_policy, new_app, on, role, run_pack

ENGINE = "aurora-postgresql"
VERSION = "16.8"


def cluster(stack: cdk.Stack, construct_id: str, **overrides: Any) -> rds.CfnDBCluster:
    props: dict[str, Any] = {
        "engine": ENGINE,
        "engine_version": VERSION,
        "storage_encrypted": True,
        "deletion_protection": True,
        "backup_retention_period": 7,
    }
    props.update(overrides)
    return rds.CfnDBCluster(stack, construct_id, **props)


def instance(stack: cdk.Stack, construct_id: str, of: rds.CfnDBCluster, pi_key: str) -> rds.CfnDBInstance:
    return rds.CfnDBInstance(
        stack,
        construct_id,
        engine=ENGINE,
        db_cluster_identifier=of.ref,
        db_instance_class="db.r6g.large",
        enable_performance_insights=True,
        performance_insights_kms_key_id=pi_key,
    )


@pytest.fixture(scope="module")
def rds_findings() -> Findings:
    app = new_app()
    east_key = kms.CfnKey(cdk.Stack(app, "KeysEast", env=env("us-east-2")), "Key", key_policy=key_policy())
    west_key = kms.CfnKey(cdk.Stack(app, "KeysWest", env=env("us-west-1")), "Key", key_policy=key_policy())

    good = cdk.Stack(app, "Good", env=env("us-east-2"))
    global_cluster = rds.CfnGlobalCluster(
        good,
        "Global",
        global_cluster_identifier="records-global",
        engine=ENGINE,
        engine_version=VERSION,
        storage_encrypted=True,
        deletion_protection=True,
    )
    primary = cluster(
        good,
        "Primary",
        global_cluster_identifier=global_cluster.ref,
        kms_key_id=east_key.attr_arn,
        master_username="admin_user",
        master_user_password="{{resolve:secretsmanager:s:SecretString:password}}",
    )
    instance(good, "PrimaryInstance", primary, east_key.attr_arn)
    good_secondary = cdk.Stack(app, "GoodSecondary", env=env("us-west-1"))
    secondary = cluster(
        good_secondary, "Secondary", global_cluster_identifier="records-global", kms_key_id=west_key.attr_arn
    )
    instance(good_secondary, "SecondaryInstance", secondary, f"arn:aws:kms:us-west-1:{ACCOUNT}:key/k1")

    # us-west-1's secondary on us-east-2's key, unprotected, one day of backups, its own master user.
    bad = cdk.Stack(app, "Bad", env=env("us-west-1"))
    bad_cluster = cluster(
        bad,
        "CrossRegionKey",
        global_cluster_identifier="records-global",
        kms_key_id=east_key.attr_arn,
        deletion_protection=False,
        backup_retention_period=1,
        master_username="second_admin",
    )
    instance(bad, "OtherRegionPiKey", bad_cluster, east_key.attr_arn)
    # Unencrypted, the AWS managed key, not a member of the global cluster.
    cluster(
        bad,
        "AwsManagedKey",
        storage_encrypted=False,
        kms_key_id="alias/aws/rds",
        global_cluster_identifier="no-such-global-cluster",
    )
    cluster(bad, "NoKeyNoGlobal")  # no KmsKeyId (the AWS managed default) and no GlobalClusterIdentifier
    cluster(
        bad,
        "OtherVersion",
        global_cluster_identifier="records-global",
        engine_version="16.6",
        kms_key_id=west_key.attr_arn,
    )
    # A "secondary" in the primary's own region.
    bad_east = cdk.Stack(app, "BadEast", env=env("us-east-2"))
    cluster(bad_east, "SameRegion", global_cluster_identifier="records-global", kms_key_id=east_key.attr_arn)
    rds.CfnGlobalCluster(bad_east, "OpenGlobal", engine=ENGINE, storage_encrypted=False, deletion_protection=False)
    return run_pack(app)


def _rule(findings: Findings, prefix: str) -> dict[str, list[str]]:
    return {r: p for r, p in findings.items() if r.startswith(prefix)}


def test_global_cluster_with_members_on_their_own_region_keys_passes(rds_findings: Findings) -> None:
    assert on(rds_findings, "Good") == {}
    assert on(rds_findings, "GoodSecondary") == {}
    assert on(rds_findings, "KeysEast") == {} and on(rds_findings, "KeysWest") == {}


def test_cluster_on_another_regions_key_or_aws_managed_or_unencrypted_is_a_finding(rds_findings: Findings) -> None:
    assert _rule(rds_findings, "MrkToolkit-RDS1") == {
        "MrkToolkit-RDS1[KmsKeyId]": ["Bad/AwsManagedKey", "Bad/CrossRegionKey", "Bad/NoKeyNoGlobal"],
        "MrkToolkit-RDS1[StorageEncrypted]": ["Bad/AwsManagedKey"],
        "MrkToolkit-RDS1[PerformanceInsightsKMSKeyId]": ["Bad/OtherRegionPiKey"],
    }


def test_cluster_or_global_cluster_without_deletion_protection_is_a_finding(rds_findings: Findings) -> None:
    assert _rule(rds_findings, "MrkToolkit-RDS2") == {
        "MrkToolkit-RDS2[DeletionProtection]": ["Bad/CrossRegionKey", "BadEast/OpenGlobal"]
    }


def test_cluster_outside_the_global_cluster_or_unlike_it_is_a_finding(rds_findings: Findings) -> None:
    assert _rule(rds_findings, "MrkToolkit-RDS3") == {
        "MrkToolkit-RDS3[GlobalClusterIdentifier]": ["Bad/AwsManagedKey", "Bad/NoKeyNoGlobal"],
        "MrkToolkit-RDS3[MasterCredentials]": ["Bad/CrossRegionKey"],
        "MrkToolkit-RDS3[EngineVersion]": ["Bad/OtherVersion"],
        "MrkToolkit-RDS3[SameRegionAsPrimary]": ["BadEast/SameRegion"],
        "MrkToolkit-RDS3[StorageEncrypted]": ["BadEast/OpenGlobal"],
    }


def test_cluster_with_less_than_a_week_of_backups_is_a_finding(rds_findings: Findings) -> None:
    assert _rule(rds_findings, "MrkToolkit-RDS4") == {"MrkToolkit-RDS4[BackupRetentionPeriod]": ["Bad/CrossRegionKey"]}


SECRET_ARN = f"arn:aws:secretsmanager:us-east-2:{ACCOUNT}:secret:MrkToolkit/aurora/records_writer-AbCdEf"
SECRETS_KEY_ARN = f"arn:aws:kms:us-east-2:{ACCOUNT}:key/k-secrets"


def decrypt_via(sid: str, operator: str, service: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid=sid,
        actions=["kms:Decrypt"],
        resources=[SECRETS_KEY_ARN],
        conditions={operator: {"kms:ViaService": service}},
    )


@pytest.fixture(scope="module")
def secrets_findings() -> Findings:
    app = new_app()
    good = cdk.Stack(app, "Good", env=env("us-east-2"))
    role(
        good,
        "Writer",
        "/MrkToolkit/writer/",
        allow("OwnSecret", ["secretsmanager:GetSecretValue"], [SECRET_ARN]),
        decrypt_via("SecretThroughSecretsManager", "StringEquals", "secretsmanager.us-east-2.amazonaws.com"),
    )
    bad = cdk.Stack(app, "Bad", env=env("us-east-2"))
    role(
        bad,
        "Any",
        None,
        allow("AllSecrets", ["secretsmanager:GetSecretValue"], ["*"]),
        allow("SecretsOfAccount", ["secretsmanager:*"], [f"arn:aws:secretsmanager:us-east-2:{ACCOUNT}:secret:*"]),
        allow("AnyDbUser", ["rds-db:connect"], [f"arn:aws:rds-db:us-east-2:{ACCOUNT}:dbuser:*/*"]),
        allow("AllClusters", ["rds:*"], ["*"]),
    )
    # A writer that may decrypt through another service, or with a pattern that is not exactly Secrets Manager.
    role(
        bad,
        "Writer",
        "/MrkToolkit/writer/",
        decrypt_via("ViaDynamo", "StringEquals", "dynamodb.us-east-2.amazonaws.com"),
    )
    role(bad, "LikeWriter", "/MrkToolkit/writer/", decrypt_via("ViaLike", "StringLike", "secretsmanager.*"))
    return run_pack(app)


def test_a_writer_may_decrypt_its_secret_only_through_secrets_manager(secrets_findings: Findings) -> None:
    assert on(secrets_findings, "Good") == {}
    assert _rule(secrets_findings, "MrkToolkit-IAM2") == {
        "MrkToolkit-IAM2[writer::kms:Decrypt]": ["Bad/LikeWriterPolicy/Resource", "Bad/WriterPolicy/Resource"]
    }


def test_secrets_or_database_permissions_on_a_wildcard_resource_are_findings(secrets_findings: Findings) -> None:
    assert _rule(secrets_findings, "MrkToolkit-IAM1") == {
        "MrkToolkit-IAM1[AllSecrets::secretsmanager:GetSecretValue]": ["Bad/AnyPolicy/Resource"],
        "MrkToolkit-IAM1[SecretsOfAccount::secretsmanager:*]": ["Bad/AnyPolicy/Resource"],
        "MrkToolkit-IAM1[AnyDbUser::rds-db:connect]": ["Bad/AnyPolicy/Resource"],
        "MrkToolkit-IAM1[AllClusters::rds:*]": ["Bad/AnyPolicy/Resource"],
    }


@pytest.fixture(scope="module")
def aurora_app() -> Any:
    return synthesize(context_for(store="aurora-postgresql", replicaRegions=["us-west-1", "eu-west-1"]))


def _violations(app: Any) -> list[tuple[str, str]]:
    root = next(iter(app.stacks.keys.values())).node.root
    report = MrkToolkitChecks(verbose=True).validate_scope(root)
    return sorted((v.rule_name, r.construct_path) for v in report.violations for r in v.violating_resources)


def test_toolkit_aurora_app_has_zero_findings(aurora_app: Any) -> None:
    assert _violations(aurora_app) == []


def test_an_edited_template_with_a_secondary_on_the_primarys_key_fails(aurora_app: Any) -> None:
    """The rules read the synthesized templates: point eu-west-1's cluster at us-east-2's storage key
    and drop its deletion protection in the file, as a hand edit would, and they fail."""
    stack = aurora_app.stacks.databases["eu-west-1"]
    path = Path(aurora_app.assembly.directory) / stack.template_file
    original = path.read_text()
    template = json.loads(original)
    (cluster,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::RDS::DBCluster"]
    cluster["Properties"]["KmsKeyId"]["Fn::GetStackOutput"]["Region"] = "us-east-2"
    cluster["Properties"]["KmsKeyId"]["Fn::GetStackOutput"]["StackName"] = "MrkToolkit-Keys-us-east-2"
    cluster["Properties"]["DeletionProtection"] = False
    try:
        path.write_text(json.dumps(template))
        assert _violations(aurora_app) == [
            ("MrkToolkit-RDS1[KmsKeyId]", "MrkToolkit-Database-eu-west-1/Secondary/Cluster"),
            ("MrkToolkit-RDS2[DeletionProtection]", "MrkToolkit-Database-eu-west-1/Secondary/Cluster"),
        ]
    finally:
        path.write_text(original)
    assert _violations(aurora_app) == []
