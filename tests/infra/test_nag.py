"""cdk-nag AwsSolutions, NIST 800-53 R5, HIPAA Security and PCI DSS 3.2.1 on the whole app:
zero unacknowledged findings."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_

from stacks.app_builder import add_compliance_checks
from stacks.database_stack import GLOBAL_ENDPOINT_FINDING
from tests.infra.conftest import AURORA, AURORA_THREE_REGIONS, FOUR_REGIONS
from tests.infra.synth import context_for, synthesize


@pytest.mark.parametrize(
    "overrides",
    [{}, FOUR_REGIONS, AURORA, AURORA_THREE_REGIONS],
    ids=["default", "four-region", "aurora", "aurora-three-regions"],
)
def test_app_has_no_unacknowledged_nag_findings(overrides: dict) -> None:
    synthesize(context_for(**overrides), nag=True)  # raises on any finding


AUDIT_ACKNOWLEDGEMENTS = {
    "AwsSolutions-S1": "Audit/Bucket/Resource",
    **{
        f"{pack}-S3BucketLoggingEnabled": "Audit/Bucket/Resource"
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
    },
    **{
        f"{pack}-S3BucketReplicationEnabled": "Audit/Bucket/Resource"
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
    },
    **{
        f"{pack}-CloudTrailCloudWatchLogsEnabled": "Audit/Trail"
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
    },
}


def test_acknowledgements_are_scoped_and_reasoned(default_app) -> None:  # type: ignore[no-untyped-def]
    found = _acknowledgements(default_app)
    for rule, entries in found.items():
        for path, rule_id in entries:
            if rule in AUDIT_ACKNOWLEDGEMENTS:
                # The trail's bucket and the trail only, each for its one finding.
                assert path == AUDIT_ACKNOWLEDGEMENTS[rule], (rule_id, path)
            elif rule == "AwsSolutions-IAM5":
                # Only the X-Ray policy, and only its Resource::* finding.
                assert path.endswith("/TracingPolicy"), path
                assert rule_id == "AwsSolutions::AwsSolutions-IAM5[Resource::*]"
            else:
                assert path.endswith("/Function"), (rule_id, path)
    assert set(found) == {
        "AwsSolutions-IAM5",
        "NIST.800.53.R5-LambdaInsideVPC",
        "HIPAA.Security-LambdaInsideVPC",
        "PCI.DSS.321-LambdaInsideVPC",
        "NIST.800.53.R5-LambdaDLQ",
        "HIPAA.Security-LambdaDLQ",
        "AwsSolutions-L1",  # python3.13: the runtime the bundle's bytecode is compiled for (lambda_bundle.py)
        *AUDIT_ACKNOWLEDGEMENTS,
    }


def test_nag_plugin_fails_synth_on_a_finding(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The non-compliant case: the same wiring refuses an outdated runtime."""
    app = cdk.App(outdir=str(tmp_path), post_cli_context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "NonCompliant", env=cdk.Environment(account="111122223333", region="us-east-2"))
    lambda_.Function(
        stack,
        "Old",
        runtime=lambda_.Runtime.PYTHON_3_9,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(e, c): return e"),
    )
    add_compliance_checks(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()


def _acknowledgements(app) -> dict[str, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """Rule id (without the finding) -> (construct path, reason) of every acknowledgement."""
    found: dict[str, list[tuple[str, str]]] = {}
    for stack in app.stacks.all():
        for construct in stack.node.find_all():
            for entry in construct.node.metadata:
                if entry.type != "aws:cdk:acknowledged-rules":
                    continue
                # Scoped: on one resource, never on a stack; one finding, never a whole rule. The one
                # exception: CDK's schema check reports an output's GetAtt on the stack (the global
                # writer endpoint, GlobalEndpoint.Address), and only that finding is acknowledged there.
                if construct is stack:
                    assert set(entry.data) == {GLOBAL_ENDPOINT_FINDING}, f"stack-wide ack. on {stack.stack_name}"
                for rule_id, reason in entry.data.items():
                    assert len(reason) > 60, f"{rule_id} on {construct.node.path}: give a reason"
                    rule = rule_id.split("::", 1)[1].split("[")[0]
                    path = "<stack>" if construct is stack else construct.node.path.split("/", 1)[1]
                    found.setdefault(rule, []).append((path, rule_id))
    return found


def test_aurora_acknowledgements_are_scoped_and_reasoned(aurora_app) -> None:  # type: ignore[no-untyped-def]
    found = _acknowledgements(aurora_app)
    where = {rule: sorted({path for path, _ in entries}) for rule, entries in found.items()}
    # In the VPC: no LambdaInsideVPC for the writer and the reader; only CDK's provider framework function.
    framework = "SchemaSetupProvider/framework-onEvent"
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        assert where[f"{pack}-LambdaInsideVPC"] == [framework]
        assert where[f"{pack}-VPCDefaultSecurityGroupClosed"] == ["Network/Vpc/Resource"]
    # Per member of the global database: its cluster, its instance, its monitoring role.
    assert where["AwsSolutions-RDS6"] == ["Primary/Cluster", "Secondary/Cluster"]
    for pack in ("NIST.800.53.R5", "HIPAA.Security"):
        assert where[f"{pack}-RDSInBackupPlan"] == ["Primary/Instance", "Secondary/Instance"]
        # The secrets rotate on a schedule (README "Secret rotation"): nothing to acknowledge.
        assert f"{pack}-SecretsManagerRotationEnabled" not in where
    assert "AwsSolutions-SMG4" not in where
    # IAM5 only on the X-Ray and network-interface policies, and only for their own wildcards.
    for path, rule_id in found["AwsSolutions-IAM5"]:
        assert path.endswith(("/TracingPolicy", "/NetworkPolicy", "SchemaSetupNetworkPolicy")), path
        assert rule_id == "AwsSolutions::AwsSolutions-IAM5[Resource::*]" or rule_id.endswith(":network-interface/*]"), (
            rule_id
        )
    assert [rid for _, rid in found["AwsSolutions-IAM4"]] == [
        "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AmazonRDSEnhancedMonitoringRole]"
    ] * 2
    # Nothing of our own pack is acknowledged.
    assert not [rule for rule in found if rule.startswith("MrkToolkit-")]
