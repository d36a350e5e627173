"""The region's discovery parameters: what an application needs to use the deployment, published as SSM
String parameters under one path (lambda_src/record_crypto/settings.py, ``discovery_path``)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct


class DiscoveryParameters(Construct):
    """One ``AWS::SSM::Parameter`` (String, standard tier) per value.

    Props:
        path: the parameters' path, ``/<deployment>/<region>`` (no trailing slash).
        values: parameter name (below the path) -> value; construct ids are the names in PascalCase.

    Nothing secret is published (ARNs, names, endpoints): String parameters, readable by a principal
    whose IAM policy allows it (``grant_read``: GetParametersByPath on the path and GetParameter(s) on each
    parameter, no wildcard).
    """

    def __init__(self, scope: Construct, construct_id: str, *, path: str, values: Mapping[str, str]) -> None:
        super().__init__(scope, construct_id)
        self.path = path
        self.parameters: dict[str, ssm.StringParameter] = {
            name: ssm.StringParameter(
                self,
                "".join(part.capitalize() for part in name.split("-")),
                parameter_name=f"{path}/{name}",
                string_value=value,
                tier=ssm.ParameterTier.STANDARD,
            )
            for name, value in values.items()
        }

    def path_arn(self, region: str, account: str, partition: str = "aws") -> str:
        """The ARN IAM authorizes GetParametersByPath on (the path without a trailing slash)."""
        return f"arn:{partition}:ssm:{region}:{account}:parameter{self.path}"

    def read_statements(self, *, region: str, account: str, partition: str) -> list[iam.PolicyStatement]:
        """GetParametersByPath on the path, GetParameter(s) on each parameter; nothing else (two statements:
        each action on only the resources it names)."""
        return [
            iam.PolicyStatement(
                sid="DiscoveryPath",
                actions=["ssm:GetParametersByPath"],
                resources=[self.path_arn(region, account, partition)],
            ),
            iam.PolicyStatement(
                sid="DiscoveryParameters",
                actions=["ssm:GetParameters", "ssm:GetParameter"],
                resources=[p.parameter_arn for p in self.parameters.values()],
            ),
        ]

    def grant_read(self, grantee: iam.IGrantable, *, region: str, account: str, partition: str) -> None:
        """``read_statements`` added to the grantee's policy."""
        for statement in self.read_statements(region=region, account=account, partition=partition):
            grantee.grant_principal.add_to_principal_policy(statement)
