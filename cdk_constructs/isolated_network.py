"""The network of one region for the Aurora store: a VPC with isolated subnets only.

No internet gateway, no NAT: the functions reach the cluster on 5432 and the regional APIs they
call through interface endpoints (KMS, Secrets Manager, CloudWatch Logs, X-Ray), each endpoint
reachable on 443 from the database clients' security group alone. The only way out of the VPC is to
the other regions' VPCs, peered (cdk_constructs/vpc_peering.py), on 5432: a writer reaches the
current primary's cluster through the global writer endpoint wherever that cluster is.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_constructs.logs_key import LogsKey, encrypted_log_group

POSTGRES_PORT = 5432
# What the functions call (X-Ray: they trace actively). RDS's own use of KMS needs no endpoint.
ENDPOINT_SERVICES = (
    ("Kms", ec2.InterfaceVpcEndpointAwsService.KMS),
    ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
    ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
    ("XRay", ec2.InterfaceVpcEndpointAwsService.XRAY),
)


class IsolatedNetwork(Construct):
    """VPC (``max_azs`` isolated subnets, one per AZ), interface endpoints, and three security groups:

    - ``clients``: the writer, the reader and the schema setup function; egress only to the cluster
      on 5432 (this region's, or a peer VPC's range) and to the endpoints on 443.
    - ``database``: the cluster; ingress only from ``clients`` on 5432, and from each peer VPC's
      range (``peer_cidrs``, the other regions' writers) on 5432; no egress.
    - ``endpoints``: the interface endpoints; ingress only from ``clients`` on 443, no egress.

    Flow logs of every subnet go to a log group encrypted with a key of this region.
    Props: ``cidr`` (distinct in every region: the VPCs are peered); ``peer_cidrs`` (the other
    regions' VPC ranges, none by default); ``max_azs`` (2, what an Aurora subnet group needs); ``log_retention_days``;
    ``admin_arns``, ``removal_policy`` (flow log group and its key).
    Attributes: ``vpc``, ``clients``, ``database``, ``endpoints``, ``subnets`` (``SubnetSelection``),
    ``route_table_ids`` (the isolated subnets' route tables, where the routes to the peers go).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cidr: str = "10.20.0.0/16",
        peer_cidrs: Sequence[str] = (),
        max_azs: int = 2,
        log_retention_days: int,
        admin_arns: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            max_azs=max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
            ],
            enable_dns_hostnames=True,  # interface endpoints answer the services' public names
            enable_dns_support=True,
            restrict_default_security_group=False,  # see acknowledge_network_findings: no rules are used
        )
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        self._flow_logs(log_retention_days, admin_arns, removal_policy)
        self.route_table_ids = [subnet.route_table.route_table_id for subnet in self.vpc.isolated_subnets]
        self._security_groups(peer_cidrs)
        self.interface_endpoints = self._interface_endpoints()

    def _flow_logs(self, log_retention_days: int, admin_arns: Sequence[str], removal_policy: RemovalPolicy) -> None:
        """Flow logs of every subnet, to a log group encrypted with a key of this region."""
        self.flow_logs_key = LogsKey(self, "FlowLogsKey", admin_arns=admin_arns, removal_policy=removal_policy)
        flow_log_group = encrypted_log_group(
            self,
            "FlowLogs",
            key=self.flow_logs_key.key,
            retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        # The flow logs' role, with a customer-managed policy on this log group only (CDK's
        # default is an inline policy).
        flow_role = iam.Role(
            self,
            "FlowLogsRole",
            assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com"),
            description="VPC flow logs of the records network: writes to its own log group",
        )
        iam.ManagedPolicy(
            self,
            "FlowLogsPolicy",
            description="VPC flow logs: its own log group",
            roles=[flow_role],
            statements=[
                iam.PolicyStatement(
                    sid="OwnLogGroup",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[flow_log_group.log_group_arn],
                )
            ],
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group, flow_role.without_policy_updates()),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

    def _security_groups(self, peer_cidrs: Sequence[str]) -> None:
        """clients -> database on 5432, clients -> endpoints on 443, peers' ranges <-> 5432; nothing else."""

        def group(name: str, description: str) -> ec2.SecurityGroup:
            return ec2.SecurityGroup(self, name, vpc=self.vpc, description=description, allow_all_outbound=False)

        self.clients = group("ClientsSecurityGroup", "Database clients: the writer, the reader, the schema setup")
        self.database = group("DatabaseSecurityGroup", "Aurora PostgreSQL cluster: 5432 from the clients only")
        self.endpoints = group("EndpointsSecurityGroup", "Interface endpoints: 443 from the clients only")
        self.database.add_ingress_rule(
            self.clients, ec2.Port.tcp(POSTGRES_PORT), "PostgreSQL from the database clients"
        )
        self.clients.add_egress_rule(self.database, ec2.Port.tcp(POSTGRES_PORT), "PostgreSQL to the cluster")
        self.endpoints.add_ingress_rule(self.clients, ec2.Port.tcp(443), "HTTPS from the database clients")
        self.clients.add_egress_rule(self.endpoints, ec2.Port.tcp(443), "HTTPS to the interface endpoints")
        for peer in peer_cidrs:
            # The peer regions' writers reach this cluster when it is the primary (global writer endpoint).
            self.database.add_ingress_rule(
                ec2.Peer.ipv4(peer), ec2.Port.tcp(POSTGRES_PORT), f"PostgreSQL from the peered VPC {peer}"
            )
            self.clients.add_egress_rule(
                ec2.Peer.ipv4(peer), ec2.Port.tcp(POSTGRES_PORT), f"PostgreSQL to the peered VPC {peer}"
            )

    def _interface_endpoints(self) -> dict[str, ec2.InterfaceVpcEndpoint]:
        """The services the functions and the schema setup reach without a route out of the VPC."""
        endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        for name, service in ENDPOINT_SERVICES:
            endpoints[name] = self.vpc.add_interface_endpoint(
                f"{name}Endpoint",
                service=service,
                subnets=self.subnets,
                security_groups=[self.endpoints],
                private_dns_enabled=True,
                open=False,  # the rule above, not the VPC CIDR
            )
        return endpoints
