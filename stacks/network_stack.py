"""The network of one region (Aurora store only): isolated VPC, endpoints, security groups."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Fn, Stack, Validations
from constructs import Construct

from cdk_constructs.isolated_network import IsolatedNetwork
from stacks.config import ToolkitConfig
from stacks.shared import removal_policy

AZ_COUNT = 2


class NetworkStack(Stack):
    """Attributes: ``network`` (``IsolatedNetwork``), ``cidr`` (the VPC's range); output ``VpcId``."""

    def __init__(self, scope: Construct, construct_id: str, *, config: ToolkitConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        aurora = config.aurora
        assert aurora is not None, "NetworkStack is for store aurora-postgresql"
        self.cidr = aurora.vpc_cidr(self.region)
        self.network = IsolatedNetwork(
            self,
            "Network",
            cidr=self.cidr,
            peer_cidrs=[cidr for region, cidr in aurora.vpc_cidrs if region != self.region],
            max_azs=AZ_COUNT,
            log_retention_days=config.log_retention_days,
            admin_arns=config.key_admin_arns,
            removal_policy=removal_policy(config),
        )
        acknowledge_network_findings(self.network)
        # Read by the peering stacks of other regions (Fn::GetStackOutput: no cross-region export exists).
        CfnOutput(self, "VpcId", value=self.network.vpc.vpc_id)

    def output_value(self, output_name: str) -> str:
        """A weak reference (``Fn::GetStackOutput``) to one of this stack's outputs."""
        return Fn.get_stack_output(self.stack_name, output_name, self.region)

    @property
    def availability_zones(self) -> list[str]:
        """The region's first AZs as ``Fn::GetAZs`` picks them at deploy time: synth looks nothing
        up (no credentials, no cdk.context.json) and gives the same template on every machine."""
        return [Fn.select(i, Fn.get_azs()) for i in range(AZ_COUNT)]


def acknowledge_network_findings(network: IsolatedNetwork) -> None:
    vpc = network.vpc.node.default_child
    assert vpc is not None
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        Validations.of(vpc).acknowledge(
            Acknowledgment(id=f"{pack}::{pack}-VPCDefaultSecurityGroupClosed", reason=DEFAULT_SG_REASON)
        )


DEFAULT_SG_REASON = (
    "Nothing uses the VPC's default security group: every interface endpoint, function and cluster names its own "
    "group (tests/infra assert it). Closing it needs CDK's custom-resource Lambda (restrictDefaultSecurityGroup), "
    "an extra function with EC2 write permissions in every region."
)
