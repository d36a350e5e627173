"""The records database of one region (Aurora store only).

The primary region's stack holds the ``AWS::RDS::GlobalCluster``, the primary cluster, the
credentials (master secret, one secret per database role, replicated) and the schema setup;
every other region's stack holds a secondary cluster joined to the global cluster by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, CfnResource, CustomResource, Duration, Fn, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

from cdk_constructs.aurora_global import AuroraClusterMember, ClusterOptions, PrimaryCredentials, global_cluster
from cdk_constructs.database_secrets import (
    DatabaseSecrets,
    secret_arn_in_region,
    secret_id,
    secret_read_statements,
)
from cdk_constructs.encrypting_functions import (
    function_role,
    network_interface_arn_pattern,
    own_log_group,
    vpc_access_policy,
)
from cdk_constructs.isolated_network import IsolatedNetwork
from cdk_constructs.lambda_bundle import RUNTIME, RUNTIME_REASON, function_code
from cdk_constructs.logs_key import LogsKey, encrypted_log_group
from cdk_constructs.secret_rotation import SecretRotation
from lambda_src.record_crypto.settings import (
    ENV_BEACON_FIELDS,
    ENV_DB_HOST,
    ENV_DB_MASTER_SECRET_ARN,
    ENV_DB_NAME,
    ENV_DB_PORT,
    ENV_DB_READER_SECRET_ARN,
    ENV_DB_WRITER_SECRET_ARN,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    beacon_fields_environment,
)
from stacks.config import ToolkitConfig
from stacks.shared import removal_policy

DB_SETUP_HANDLER = "db_setup.handler"


def global_cluster_identifier(config: ToolkitConfig) -> str:
    return f"{config.stack_prefix.lower()}-records"


def cluster_identifier(config: ToolkitConfig, region: str) -> str:
    """One region's cluster: a fixed name, so that the region's alarms name it (DBClusterIdentifier)."""
    return f"{global_cluster_identifier(config)}-{region}"


def secret_name_prefix(config: ToolkitConfig) -> str:
    return f"{config.stack_prefix}/aurora"


def db_setup_role_path(config: ToolkitConfig) -> str:
    return f"/{config.stack_prefix}/dbsetup/"


def rotation_role_path(config: ToolkitConfig) -> str:
    return f"/{config.stack_prefix}/rotation/"


class DatabaseStack(Stack):
    """Attributes: ``member`` (this region's ``AuroraClusterMember``), ``writer_secret_arn``,
    ``reader_secret_arn`` (ARNs in this region), ``global_writer_endpoint`` (the global cluster's
    writer endpoint, also output as ``GlobalWriterEndpoint``), ``port``, ``database_name``;
    primary only: ``secrets``, ``global_cluster``, ``schema``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ToolkitConfig,
        network: IsolatedNetwork,
        storage_key_arn: str,
        secrets_key_arns: Mapping[str, str],
        primary: DatabaseStack | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        aurora = config.aurora
        assert aurora is not None, "DatabaseStack is for store aurora-postgresql"
        options = ClusterOptions(
            engine_version=aurora.engine_version,
            instance_class=aurora.instance_class,
            backup_retention_days=aurora.backup_retention_days,
            removal_policy=removal_policy(config),
        )
        placement: dict[str, Any] = {
            "options": options,
            "vpc": network.vpc,
            "subnets": network.subnets,
            "security_group": network.database,
            "storage_key_arn": storage_key_arn,
        }
        self.is_primary = primary is None
        if primary is None:
            self._primary_member(config, placement, secrets_key_arns, network)
        else:
            self._secondary_member(config, placement, primary)
        acknowledge_member_findings(self)
        # This region's functions: the writer on the global writer endpoint (the current primary's
        # writer, wherever it is), the reader on this region's reader endpoint (DatabaseAccess).
        CfnOutput(self, "GlobalWriterEndpoint", value=self.global_writer_endpoint)
        if primary is None:
            # CDK reports a finding on an output on the stack itself: the narrowest scope there is.
            _ack(self, GLOBAL_ENDPOINT_FINDING, GLOBAL_ENDPOINT_REASON)
            # cfn-lint's E6101 makes the same schema check of this output; cfn-lint reads ignores from a
            # resource's or the template's Metadata, and an output has none: this one template, this one rule
            # (a template's list replaces .cfnlintrc's, so .cfnlintrc's W3005 is repeated here).
            ignored = [CFN_LINT_OUTPUT_SCHEMA, "W3005"]
            self.template_options.metadata = {"cfn-lint": {"config": {"ignore_checks": ignored}}}
        self.port = self.member.port
        self.database_name = aurora.database_name
        CfnOutput(self, "GlobalClusterIdentifier", value=global_cluster_identifier(config))
        CfnOutput(self, "ClusterIdentifier", value=self.member.cluster.ref)
        CfnOutput(self, "ClusterEndpoint", value=self.member.endpoint)
        CfnOutput(self, "ClusterReadEndpoint", value=self.member.read_endpoint)
        CfnOutput(self, "ClusterPort", value=self.member.port)
        CfnOutput(self, "DatabaseName", value=aurora.database_name)
        CfnOutput(self, "WriterSecretArn", value=self.writer_secret_arn)
        CfnOutput(self, "ReaderSecretArn", value=self.reader_secret_arn)

    def _primary_member(
        self,
        config: ToolkitConfig,
        placement: dict[str, Any],
        secrets_key_arns: Mapping[str, str],
        network: IsolatedNetwork,
    ) -> None:
        """The secrets, the global cluster, its primary member and the schema."""
        aurora = config.aurora
        assert aurora is not None
        self.secrets = DatabaseSecrets(
            self,
            "Secrets",
            name_prefix=secret_name_prefix(config),
            database_name=aurora.database_name,
            primary_region=config.primary_region,
            secrets_key_arns=secrets_key_arns,
            removal_policy=removal_policy(config),
        )
        self.global_cluster = global_cluster(
            self, "GlobalCluster", identifier=global_cluster_identifier(config), options=placement["options"]
        )
        # GlobalEndpoint is an object in the resource's schema; its Address is read as DBCluster's
        # Endpoint.Address is (CloudFormation's GetAtt on a nested read-only property).
        self.global_writer_endpoint = Token.as_string(self.global_cluster.get_att("GlobalEndpoint.Address"))
        self.member = AuroraClusterMember(
            self,
            "Primary",
            cluster_identifier=cluster_identifier(config, self.region),
            global_cluster_identifier=self.global_cluster.ref,
            primary=PrimaryCredentials(master_secret=self.secrets.master, database_name=aurora.database_name),
            **placement,
        )
        # The secrets' "name-suffix" (the same in every replica region), computed here: a
        # secondary reads it from these outputs and builds its region's ARN.
        CfnOutput(self, "WriterSecretId", value=secret_id(self.secrets.writer.secret_arn))
        CfnOutput(self, "ReaderSecretId", value=secret_id(self.secrets.reader.secret_arn))
        self.writer_secret_arn = self.secrets.writer.secret_arn
        self.reader_secret_arn = self.secrets.reader.secret_arn
        self.schema = self._schema_setup(config, network, secrets_key_arns[config.primary_region])
        CfnOutput(self, "MasterSecretArn", value=self.secrets.master.secret_arn)
        self.rotation = self._rotation(config, network, secrets_key_arns[config.primary_region])

    def _rotation(self, config: ToolkitConfig, network: IsolatedNetwork, secrets_key_arn: str) -> SecretRotation:
        """Each database secret: attached to the primary cluster (host, port, engine in the secret)
        and rotated on schedule by the rotation function (README "Secret rotation")."""
        aurora = config.aurora
        assert aurora is not None
        secrets = {"Master": self.secrets.master, "Writer": self.secrets.writer, "Reader": self.secrets.reader}
        attachments = [
            secretsmanager.CfnSecretTargetAttachment(
                self,
                f"{name}SecretAttachment",
                secret_id=secret.secret_arn,
                target_id=self.member.cluster.ref,
                target_type="AWS::RDS::DBCluster",
            )
            for name, secret in secrets.items()
        ]
        log_group = encrypted_log_group(
            self,
            "RotationLogs",
            key=self.schema_logs_key.key,  # the schema setup's logs key (any log group of the region)
            retention_days=config.log_retention_days,
            removal_policy=removal_policy(config),
        )
        rotation = SecretRotation(
            self,
            "SecretRotation",
            secrets=secrets,
            secrets_key_arn=secrets_key_arn,
            network=network,
            rotation_days=aurora.secret_rotation_days,
            code=function_code(config.store),
            log_group=log_group,
            role_path=rotation_role_path(config),
        )
        for schedule in rotation.schedules.values():
            # A rotation logs in as the role: the roles exist (schema) and the secret names its host.
            schedule.node.add_dependency(self.schema, *attachments)
        CfnOutput(self, "RotationFunctionArn", value=rotation.function.function_arn)
        acknowledge_rotation_findings(rotation)
        return rotation

    def _secondary_member(self, config: ToolkitConfig, placement: dict[str, Any], primary: DatabaseStack) -> None:
        """A secondary member of the primary's global cluster."""
        aurora = config.aurora
        assert aurora is not None
        self.member = AuroraClusterMember(
            self,
            "Secondary",
            cluster_identifier=cluster_identifier(config, self.region),
            global_cluster_identifier=global_cluster_identifier(config),
            primary=None,
            **placement,
        )
        # The secondary joins the global cluster the primary's stack creates.
        self.add_stack_dependency(primary)
        # Passed on from the primary's stack: this region's functions name only their own region's stacks.
        self.global_writer_endpoint = primary.output_value("GlobalWriterEndpoint")
        self.writer_secret_arn = secret_arn_in_region(primary.output_value("WriterSecretId"), self.region)
        self.reader_secret_arn = secret_arn_in_region(primary.output_value("ReaderSecretId"), self.region)

    def output_value(self, output_name: str) -> str:
        """A weak reference (``Fn::GetStackOutput``) to one of this stack's outputs."""
        return Fn.get_stack_output(self.stack_name, output_name, self.region)

    def _schema_setup(self, config: ToolkitConfig, network: IsolatedNetwork, secrets_key_arn: str) -> CustomResource:
        """The custom resource that creates the table and the database roles in the primary."""
        logs_key = LogsKey(
            self, "SchemaSetupLogsKey", admin_arns=config.key_admin_arns, removal_policy=removal_policy(config)
        )
        self.schema_logs_key = logs_key
        logs_options = {
            "key": logs_key.key,
            "retention_days": config.log_retention_days,
            "removal_policy": removal_policy(config),
        }
        environment = self._schema_function(config, network, secrets_key_arn, logs_options)
        provider = self._schema_provider(config, logs_options)
        schema = CustomResource(
            self,
            "Schema",
            service_token=provider.service_token,
            resource_type="Custom::RecordsSchema",
            properties={**environment},
        )
        # Connect only once the instance is up.
        schema.node.add_dependency(self.member.instance)
        return schema

    def _schema_function(
        self, config: ToolkitConfig, network: IsolatedNetwork, secrets_key_arn: str, logs_options: dict[str, Any]
    ) -> dict[str, str]:
        """The setup function (db_setup, in the VPC) with its role; the environment it is given."""
        path = db_setup_role_path(config)
        secrets = self.secrets
        log_group = encrypted_log_group(self, "SchemaSetupLogs", **logs_options)
        role, access = function_role(
            self,
            "SchemaSetupRole",
            "SchemaSetupAccessPolicy",
            path=path,
            description="Creates the records table and the database roles (custom resource)",
            policy_description="Schema setup: the three database secrets, own log group",
            statements=[
                *secret_read_statements(
                    secret_arns=[secrets.master.secret_arn, secrets.writer.secret_arn, secrets.reader.secret_arn],
                    secrets_key_arn=secrets_key_arn,
                    region=self.region,
                ),
                own_log_group(log_group),
            ],
        )
        placement = {"vpc": network.vpc, "subnets": network.subnets, "security_group": network.clients}
        self.schema_network_policy = vpc_access_policy(
            self, "SchemaSetupNetworkPolicy", role=role, path=path, **placement
        )
        environment = self._setup_environment(config)
        self.schema_function = lambda_.Function(
            self,
            "SchemaSetupFunction",
            description="Creates the records table and the writer/reader database roles in the primary cluster",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=DB_SETUP_HANDLER,
            code=function_code(config.store),
            role=role.without_policy_updates(),
            environment=environment,
            memory_size=256,
            timeout=Duration.minutes(2),
            reserved_concurrent_executions=1,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            vpc=network.vpc,
            vpc_subnets=network.subnets,
            security_groups=[network.clients],
        )
        self.schema_function.node.add_dependency(access, self.schema_network_policy)
        self.schema_role = role
        self.schema_access_policy = access
        return environment

    def _setup_environment(self, config: ToolkitConfig) -> dict[str, str]:
        """What db_setup is given (lambda_src/db_setup.py), as its environment and the resource's properties."""
        aurora = config.aurora
        assert aurora is not None
        return {
            ENV_DB_HOST: self.member.endpoint,
            ENV_DB_PORT: self.member.port,
            ENV_DB_NAME: aurora.database_name,
            ENV_DB_MASTER_SECRET_ARN: self.secrets.master.secret_arn,
            ENV_DB_WRITER_SECRET_ARN: self.secrets.writer.secret_arn,
            ENV_DB_READER_SECRET_ARN: self.secrets.reader.secret_arn,
            ENV_TABLE_NAME: config.table_name,
            ENV_SENSITIVE_FIELDS: ",".join(config.sensitive_fields),
            # Beacons (README "Beacons"): a column and an index per field; a change re-runs the setup.
            **({ENV_BEACON_FIELDS: beacon_fields_environment(config.beacon_fields)} if config.beacon_fields else {}),
        }

    def _schema_provider(self, config: ToolkitConfig, logs_options: dict[str, Any]) -> cr.Provider:
        """The provider framework's function (CDK's, outside the VPC: it only invokes the setup
        function and answers CloudFormation's pre-signed S3 URL), with its own role and an
        encrypted log group instead of CDK's inline policy and AWS managed policy."""
        framework_logs = encrypted_log_group(self, "SchemaProviderLogs", **logs_options)
        framework_role, framework_policy = function_role(
            self,
            "SchemaProviderRole",
            "SchemaProviderPolicy",
            path=db_setup_role_path(config),
            description="CDK provider framework of the schema custom resource: invokes the setup function",
            policy_description="Schema provider framework: invoke the setup function, own log group",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeSetupFunction",
                    actions=["lambda:InvokeFunction", "lambda:GetFunction"],
                    resources=[self.schema_function.function_arn],
                ),
                own_log_group(framework_logs),
            ],
        )
        provider = cr.Provider(
            self,
            "SchemaSetupProvider",
            on_event_handler=self.schema_function,
            framework_on_event_role=framework_role.without_policy_updates(),
            log_group=framework_logs,
        )
        framework_function = provider.node.find_child("framework-onEvent")
        framework_function.node.add_dependency(framework_policy)
        acknowledge_schema_findings(self, framework_function)
        self.schema_provider = provider
        return provider


def _ack(scope: Construct, rule_id: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


GLOBAL_ENDPOINT_FINDING = "CloudFormation-Validate::F6101"
CFN_LINT_OUTPUT_SCHEMA = "E6101"  # cfn-lint: an output's GetAtt not in the resource type's schema (as above)
GLOBAL_ENDPOINT_REASON = (
    "CDK's schema check lists only the object attribute GlobalEndpoint of AWS::RDS::GlobalCluster; its documented "
    "field Address (the writer endpoint that follows the primary) is read as GlobalEndpoint.Address, as "
    "AWS::RDS::DBCluster's Endpoint.Address is."
)
NO_IAM_AUTH_REASON = (
    "Decision (README, IAM database authentication): the functions log in with their own database role's "
    "password from Secrets Manager, readable only by that function; IAM auth would add rds-db:connect grants, "
    "15-minute tokens and a new-connection rate limit, and cannot be emulated offline on real PostgreSQL."
)
BACKUP_PLAN_REASON = (
    "Aurora's own continuous backups (BackupRetentionPeriod >= 7 days, point-in-time restore) protect the "
    "cluster, and the global database keeps a full copy in every region; an AWS Backup plan (cross-account "
    "vault copies) is an organisation's choice outside this toolkit."
)
MINOR_UPGRADE_REASON = (
    "The engine version is pinned in the config (auroraEngineVersion): a global database's minor upgrades are "
    "made on the global cluster, every region together, as a reviewed change, not by each instance on its own."
)
MONITORING_POLICY_REASON = (
    "AmazonRDSEnhancedMonitoringRole is the service role RDS documents for enhanced monitoring: it writes only "
    "the RDSOSMetrics log group; the role is assumable only by monitoring.rds.amazonaws.com."
)
SETUP_DLQ_REASON = (
    "Invoked synchronously by the provider framework during a deployment: a failure fails the custom resource "
    "and the stack update, which is the notification; a dead-letter queue applies only to asynchronous calls."
)
FRAMEWORK_VPC_REASON = (
    "CDK's provider framework function only invokes the setup function and answers CloudFormation's pre-signed "
    "S3 URL; it never reaches the database. Outside the VPC it needs no S3 endpoint; the setup function is inside."
)
FRAMEWORK_CONCURRENCY_REASON = (
    "Runs once per deployment of the schema custom resource; CloudFormation is its only caller, so a reserved "
    "concurrency would only reserve capacity that is never used."
)
NETWORK_POLICY_REASON = (
    "Lambda manages a VPC function's network interfaces with the function's role: ec2:Describe* has no "
    "resource-level permissions, and a new interface's id is not known in advance (network-interface/* of this "
    "region and account; subnets and security group are named). This policy holds only those EC2 actions."
)
ROTATION_DLQ_REASON = (
    "Secrets Manager invokes the rotation function itself and retries a failed step; a rotation that does not "
    "finish leaves AWSPENDING staged, refuses the next RotateSecret and shows in DescribeSecret and the function's "
    "log group: there is no event a dead-letter queue would keep."
)
ENV_NO_SECRET_REASON = (
    "The environment holds no secret (endpoint, database name, key and secret ARNs, field names, tuning options); "  # noqa: S105
    "Lambda encrypts it at rest with an AWS-managed key. A customer-managed key would need kms:Decrypt for the "
    "writer on one more key."
)


def nag_text(scope: IConstruct, value: str) -> str:
    """A value as cdk-nag prints it in a finding: ``{"Ref": "X"}`` as ``<X>``, joins concatenated."""

    def text(part: Any) -> str:
        if isinstance(part, str):
            return part
        if isinstance(part, dict) and "Ref" in part:
            return f"<{part['Ref']}>"
        if isinstance(part, dict) and "Fn::Join" in part:
            separator, parts = part["Fn::Join"]
            return separator.join(text(p) for p in parts)
        raise ValueError(f"no nag text for {part!r}")

    return text(Stack.of(scope).resolve(value))


def acknowledge_network_policy(policy: IConstruct) -> None:
    interfaces = nag_text(policy, network_interface_arn_pattern(policy))
    _ack(policy, "AwsSolutions::AwsSolutions-IAM5[Resource::*]", NETWORK_POLICY_REASON)
    _ack(policy, f"AwsSolutions::AwsSolutions-IAM5[Resource::{interfaces}]", NETWORK_POLICY_REASON)


def acknowledge_member_findings(stack: DatabaseStack) -> None:
    member = stack.member
    _ack(member.cluster, "AwsSolutions::AwsSolutions-RDS6", NO_IAM_AUTH_REASON)
    _ack(
        member.monitoring_role,
        "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]",
        MONITORING_POLICY_REASON,
    )
    for pack in ("NIST.800.53.R5", "HIPAA.Security"):
        _ack(member.instance, f"{pack}::{pack}-RDSInBackupPlan", BACKUP_PLAN_REASON)
    for pack in ("HIPAA.Security", "PCI.DSS.321"):
        _ack(member.instance, f"{pack}::{pack}-RDSAutomaticMinorVersionUpgradeEnabled", MINOR_UPGRADE_REASON)
    skips = [
        {"id": "CKV_AWS_162", "comment": NO_IAM_AUTH_REASON},
    ]
    member.cluster.add_metadata("checkov", {"skip": skips})


def acknowledge_schema_findings(stack: DatabaseStack, framework_function: IConstruct) -> None:
    acknowledge_network_policy(stack.schema_network_policy)
    _ack(stack.schema_function, "AwsSolutions::AwsSolutions-L1", RUNTIME_REASON)
    for pack in ("NIST.800.53.R5", "HIPAA.Security"):
        _ack(stack.schema_function, f"{pack}::{pack}-LambdaDLQ", SETUP_DLQ_REASON)
        _ack(framework_function, f"{pack}::{pack}-LambdaDLQ", SETUP_DLQ_REASON)
        _ack(framework_function, f"{pack}::{pack}-LambdaConcurrency", FRAMEWORK_CONCURRENCY_REASON)
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        _ack(framework_function, f"{pack}::{pack}-LambdaInsideVPC", FRAMEWORK_VPC_REASON)
    # The same findings in checkov's words.
    _checkov_skip(
        stack.schema_function,
        [("CKV_AWS_116", SETUP_DLQ_REASON), ("CKV_AWS_173", ENV_NO_SECRET_REASON)],
    )
    _checkov_skip(
        framework_function,
        [
            ("CKV_AWS_115", FRAMEWORK_CONCURRENCY_REASON),
            ("CKV_AWS_116", SETUP_DLQ_REASON),
            ("CKV_AWS_117", FRAMEWORK_VPC_REASON),
            ("CKV_AWS_173", ENV_NO_SECRET_REASON),
        ],
    )


def acknowledge_rotation_findings(rotation: SecretRotation) -> None:
    acknowledge_network_policy(rotation.network_policy)
    _ack(rotation.function, "AwsSolutions::AwsSolutions-L1", RUNTIME_REASON)
    for pack in ("NIST.800.53.R5", "HIPAA.Security"):
        _ack(rotation.function, f"{pack}::{pack}-LambdaDLQ", ROTATION_DLQ_REASON)
    _checkov_skip(rotation.function, [("CKV_AWS_116", ROTATION_DLQ_REASON)])


def _checkov_skip(construct: IConstruct, skips: list[tuple[str, str]]) -> None:
    cfn = construct.node.default_child
    assert isinstance(cfn, CfnResource)
    cfn.add_metadata("checkov", {"skip": [{"id": check, "comment": comment} for check, comment in skips]})
