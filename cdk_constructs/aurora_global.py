"""The records database on an Aurora PostgreSQL global database: one cluster per region.

CDK's ``rds.DatabaseCluster`` cannot be a secondary of a global cluster (aws/aws-cdk#22212: no
``globalClusterIdentifier`` prop, and it always sets master credentials, which a secondary must
not have, aws/aws-cdk#29880), so both members are L1 ``CfnDBCluster`` built by one construct:
the primary joins the ``AWS::RDS::GlobalCluster`` created in its stack, each secondary joins it
by identifier. Everything else is the same for every member: storage encrypted with the key of
the member's own region, deletion protection, backups, PostgreSQL logs exported, TLS forced,
enhanced monitoring and Performance Insights (encrypted with the same key), no public access.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.isolated_network import POSTGRES_PORT

ENGINE = "aurora-postgresql"
CA_CERTIFICATE = "rds-ca-rsa2048-g1"
MONITORING_INTERVAL_SECONDS = 60
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7  # the free tier
BACKUP_WINDOW = "03:00-04:00"
MAINTENANCE_WINDOW = "sun:04:30-sun:05:30"


def parameter_group_family(engine_version: str) -> str:
    return f"{ENGINE}{engine_version.split('.')[0]}"


@dataclass(frozen=True)
class ClusterOptions:
    """What every member of the global database shares."""

    engine_version: str
    instance_class: str
    backup_retention_days: int
    removal_policy: RemovalPolicy

    def removal(self, otherwise: RemovalPolicy) -> RemovalPolicy:
        """RETAIN when the config retains, else ``otherwise`` (a cluster's storage: a final snapshot)."""
        return RemovalPolicy.RETAIN if self.removal_policy == RemovalPolicy.RETAIN else otherwise


def global_cluster(
    scope: Construct, construct_id: str, *, identifier: str, options: ClusterOptions
) -> rds.CfnGlobalCluster:
    """The ``AWS::RDS::GlobalCluster``: engine, version and encryption of every member."""
    cfn = rds.CfnGlobalCluster(
        scope,
        construct_id,
        global_cluster_identifier=identifier,
        engine=ENGINE,
        engine_version=options.engine_version,
        storage_encrypted=True,
        deletion_protection=True,
    )
    cfn.apply_removal_policy(options.removal_policy)
    return cfn


@dataclass(frozen=True)
class PrimaryCredentials:
    """The primary's master user (a secondary takes the global cluster's) and initial database."""

    master_secret: secretsmanager.ISecret
    database_name: str


class AuroraClusterMember(Construct):
    """One region's cluster of the global database and its instance.

    Props (keyword-only): ``global_cluster_identifier`` (the ``Ref`` of the global cluster in the
    primary's stack, its name elsewhere); ``primary`` (``PrimaryCredentials`` for the primary, None
    for a secondary); ``options``; ``vpc``, ``subnets``,
    ``security_group``; ``storage_key_arn`` (a key of THIS region).
    Attributes: ``cluster`` (``CfnDBCluster``), ``instance`` (``CfnDBInstance``), ``endpoint``,
    ``read_endpoint``, ``port``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        global_cluster_identifier: str,
        primary: PrimaryCredentials | None,
        options: ClusterOptions,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        storage_key_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster = self._cluster(
            global_cluster_identifier=global_cluster_identifier,
            primary=primary,
            options=options,
            vpc=vpc,
            subnets=subnets,
            security_group=security_group,
            storage_key_arn=storage_key_arn,
        )
        self.instance = self._instance(options, storage_key_arn)
        self.endpoint: str = self.cluster.attr_endpoint_address
        self.read_endpoint: str = self.cluster.attr_read_endpoint_address
        self.port: str = self.cluster.attr_endpoint_port

    def _cluster(
        self,
        *,
        global_cluster_identifier: str,
        primary: PrimaryCredentials | None,
        options: ClusterOptions,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        storage_key_arn: str,
    ) -> rds.CfnDBCluster:
        """The cluster, its subnet group and parameter group; master credentials for the primary only."""
        role = "primary" if primary else "secondary"
        subnet_group = rds.SubnetGroup(
            self,
            "Subnets",
            vpc=vpc,
            vpc_subnets=subnets,
            description=f"Isolated subnets of the records database ({role})",
            removal_policy=options.removal(RemovalPolicy.DESTROY),
        )
        parameters = rds.CfnDBClusterParameterGroup(
            self,
            "Parameters",
            family=parameter_group_family(options.engine_version),
            description="Records database: TLS only, connections logged",
            parameters={"rds.force_ssl": "1", "log_connections": "1", "log_disconnections": "1"},
        )
        credentials: dict[str, str] = {}
        if primary is not None:
            credentials = {
                "master_username": primary.master_secret.secret_value_from_json("username").unsafe_unwrap(),
                "master_user_password": primary.master_secret.secret_value_from_json("password").unsafe_unwrap(),
                "database_name": primary.database_name,
            }
        cluster = rds.CfnDBCluster(
            self,
            "Cluster",
            engine=ENGINE,
            engine_version=options.engine_version,
            global_cluster_identifier=global_cluster_identifier,
            storage_encrypted=True,
            kms_key_id=storage_key_arn,
            deletion_protection=True,
            backup_retention_period=options.backup_retention_days,
            preferred_backup_window=BACKUP_WINDOW,
            preferred_maintenance_window=MAINTENANCE_WINDOW,
            copy_tags_to_snapshot=True,
            enable_cloudwatch_logs_exports=["postgresql"],
            # Credentials are in Secrets Manager, one secret per database role (see README,
            # "IAM database authentication"): no rds-db:connect for any role.
            enable_iam_database_authentication=False,
            db_subnet_group_name=subnet_group.subnet_group_name,
            vpc_security_group_ids=[security_group.security_group_id],
            db_cluster_parameter_group_name=parameters.ref,
            port=POSTGRES_PORT,
            **credentials,
        )
        cluster.apply_removal_policy(options.removal(RemovalPolicy.SNAPSHOT))
        return cluster

    def _instance(self, options: ClusterOptions, storage_key_arn: str) -> rds.CfnDBInstance:
        """The cluster's instance, with enhanced monitoring (its own role) and Performance Insights."""
        monitoring_role = iam.Role(
            self,
            "MonitoringRole",
            assumed_by=iam.ServicePrincipal("monitoring.rds.amazonaws.com"),
            description="RDS enhanced monitoring of the records database instance",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonRDSEnhancedMonitoringRole")
            ],
        )
        self.monitoring_role = monitoring_role
        instance = rds.CfnDBInstance(
            self,
            "Instance",
            engine=ENGINE,
            db_cluster_identifier=self.cluster.ref,
            db_instance_class=options.instance_class,
            publicly_accessible=False,
            # The version is pinned: minor upgrades of a global database are applied to the
            # global cluster, every region together (README), not by each instance on its own.
            auto_minor_version_upgrade=False,
            ca_certificate_identifier=CA_CERTIFICATE,
            monitoring_interval=MONITORING_INTERVAL_SECONDS,
            monitoring_role_arn=monitoring_role.role_arn,
            enable_performance_insights=True,
            performance_insights_kms_key_id=storage_key_arn,
            performance_insights_retention_period=PERFORMANCE_INSIGHTS_RETENTION_DAYS,
            preferred_maintenance_window=MAINTENANCE_WINDOW,
        )
        instance.apply_removal_policy(options.removal(RemovalPolicy.DESTROY))
        return instance
