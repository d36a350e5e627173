"""The writer and reader functions of one region, pointed at the local key and table replica."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Stack, Token, Validations
from constructs import Construct

from cdk_constructs.application_roles import ApplicationRoles
from cdk_constructs.audit_rules import AuditRules
from cdk_constructs.discovery_parameters import DiscoveryParameters
from cdk_constructs.encrypting_functions import (
    BeaconAccess,
    CryptoOptions,
    DatabaseAccess,
    EncryptingFunctions,
    record_encryption_context,
)
from cdk_constructs.lambda_bundle import RUNTIME_REASON, function_code
from cdk_constructs.multi_region_key import MultiRegionKey
from cdk_constructs.signals import (
    DYNAMODB_NAMESPACE,
    AlarmSpec,
    AlarmTopic,
    RegionAlarms,
    SignalsDashboard,
    audit_alarm_specs,
    aurora_alarm_specs,
    finder_alarm_specs,
    region_alarm_specs,
)
from lambda_src.record_crypto.settings import (
    BEACON_INDEX_PREFIX,
    PARAM_BEACON_FIELDS,
    PARAM_BEACON_KEY_ARN,
    PARAM_DB_NAME,
    PARAM_DB_PORT,
    PARAM_DB_READER_ENDPOINT,
    PARAM_DB_READER_SECRET_ARN,
    PARAM_DB_WRITER_ENDPOINT,
    PARAM_DB_WRITER_SECRET_ARN,
    PARAM_READER_TENANT_ROLE_ARN,
    PARAM_RECORD_KEY_ARN,
    PARAM_RECORD_OPTIONS,
    PARAM_TABLE_NAME,
    PARAM_TENANT_KEYS,
    PARAM_WRITER_TENANT_ROLE_ARN,
    STORE_DYNAMODB,
    beacon_backfill_path,
    beacon_fields_environment,
    discovery_path,
    record_options_value,
    tenant_keys_environment,
)
from stacks.config import ToolkitConfig
from stacks.database_stack import ENV_NO_SECRET_REASON, acknowledge_network_policy, cluster_identifier
from stacks.shared import alarm_topic_name, finder_role_path, reader_role_path, removal_policy, writer_role_path


class FunctionsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ToolkitConfig,
        mrk_arn: str,
        database: DatabaseAccess | None = None,
        store_key_arns: Sequence[str] = (),
        tenant_keys: Mapping[str, MultiRegionKey] | None = None,
        beacon_key_arn: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        cache = config.data_key_cache
        beacons = self._beacon_access(config, beacon_key_arn)
        # With tenants: every tenant, with its key here (or None where it has none).
        tenant_key_ids = (
            {
                t.tenant_id: (tenant_keys or {})[t.tenant_id].key_id if t.tenant_id in (tenant_keys or {}) else None
                for t in config.tenants
            }
            if config.tenants
            else None
        )
        self._tenant_key_ids = tenant_key_ids
        self._tenant_key_arns = [key.key_arn for key in (tenant_keys or {}).values()]
        self.functions = EncryptingFunctions(
            self,
            "Records",
            table_name=config.table_name,
            mrk_arn=mrk_arn,
            tenant_key_ids=tenant_key_ids,
            tenant_key_arns=self._tenant_key_arns,
            encryption_context=record_encryption_context(config.table_name),
            writer_role_path=writer_role_path(config),
            reader_role_path=reader_role_path(config),
            crypto=CryptoOptions(
                sensitive_fields=config.sensitive_fields,
                unsigned_attributes=config.unsigned_attributes,
                algorithm_suite=config.algorithm_suite,
                data_key_cache=cache.enabled,
                cache_max_age_seconds=cache.max_age_seconds,
                cache_max_messages=cache.max_messages,
                cache_max_bytes=cache.max_bytes,
                cache_capacity=cache.capacity,
                max_record_bytes=config.max_record_bytes,
            ),
            code=function_code(config.store),
            log_retention_days=config.log_retention_days,
            reserved_concurrency=config.reserved_concurrency,
            admin_arns=config.key_admin_arns,
            removal_policy=removal_policy(config),
            database=database,
            beacons=beacons,
        )
        acknowledge_function_findings(self.functions, in_vpc=database is not None)
        if self.functions.finder is not None:
            self._acknowledge_finder_patterns(config, database)
        self._published(config, mrk_arn, database, beacons)
        beacon_keys = [beacon_key_arn] if beacon_key_arn else []
        self._signals(
            config, mrk_arn, [*store_key_arns, *beacon_keys], [key.key_arn for key in (tenant_keys or {}).values()]
        )

    def _published(
        self, config: ToolkitConfig, mrk_arn: str, database: DatabaseAccess | None, beacons: BeaconAccess | None
    ) -> None:
        """The functions' names (stack outputs) and the region's discovery parameters (``discovery``)."""
        CfnOutput(self, "WriterFunctionName", value=self.functions.writer.function.function_name)
        CfnOutput(self, "ReaderFunctionName", value=self.functions.reader.function.function_name)
        if self.functions.finder is not None:
            CfnOutput(self, "FinderFunctionName", value=self.functions.finder.function.function_name)
        self.application = self._application_roles(config, mrk_arn, beacons)
        self.discovery = DiscoveryParameters(
            self,
            "Discovery",
            path=discovery_path(config.stack_prefix, self.region),
            values=discovery_values(
                config,
                mrk_arn,
                database,
                tenant_key_ids=self._tenant_key_ids,
                application=self.application,
                beacons=beacons if self.application is not None else None,
            ),
        )
        if self.application is not None:
            self.application.grant_discovery(self.discovery)

    def _application_roles(
        self, config: ToolkitConfig, mrk_arn: str, beacons: BeaconAccess | None
    ) -> ApplicationRoles | None:
        """With ``applicationPrincipals``: the roles an application assumes (README "The application roles")."""
        if not config.application_principals:
            return None
        roles = ApplicationRoles(
            self,
            "Application",
            principals=config.application_principals,
            mrk_arn=mrk_arn,
            encryption_context=record_encryption_context(config.table_name),
            table_arn=self.format_arn(service="dynamodb", resource="table", resource_name=config.table_name),
            writer_role_path=writer_role_path(config),
            reader_role_path=reader_role_path(config),
            tenants=bool(config.tenants),
            tenant_key_arns=self._tenant_key_arns,
            beacons=beacons,
        )
        CfnOutput(self, "ApplicationWriterRoleArn", value=roles.writer.role_arn)
        CfnOutput(self, "ApplicationReaderRoleArn", value=roles.reader.role_arn)
        return roles

    def _beacon_access(self, config: ToolkitConfig, beacon_key_arn: str | None) -> BeaconAccess | None:
        if not beacon_key_arn:
            return None
        path = beacon_backfill_path(config.stack_prefix, self.region)
        return BeaconAccess(config.beacon_fields, beacon_key_arn, finder_role_path(config), path)

    def _acknowledge_finder_patterns(self, config: ToolkitConfig, database: DatabaseAccess | None) -> None:
        if database is None:
            self._acknowledge_index_pattern(config)
        self._acknowledge_backfill_path(config)

    def _acknowledge_backfill_path(self, config: ToolkitConfig) -> None:
        """The finder reads its region's backfill state, one parameter per beacon field under one path."""
        assert self.functions.finder is not None
        account = "<AWS::AccountId>" if Token.is_unresolved(self.account) else self.account
        partition = "<AWS::Partition>" if Token.is_unresolved(self.partition) else self.partition
        path = beacon_backfill_path(config.stack_prefix, self.region)
        _ack(
            self.functions.finder.access_policy,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:{partition}:ssm:{self.region}:{account}:parameter{path}/*]",
            f"GetParameter only, on the parameters under {path} alone: one per beacon field, written by the backfill "
            "(README 'Adding a beacon field') and read to say whether a lookup is complete; they hold no secret.",
        )

    def _acknowledge_index_pattern(self, config: ToolkitConfig) -> None:
        """The finder's Query names the table's indexes by the toolkit's prefix (``index/beacon-*``)."""
        assert self.functions.finder is not None
        account = "<AWS::AccountId>" if Token.is_unresolved(self.account) else self.account
        partition = "<AWS::Partition>" if Token.is_unresolved(self.partition) else self.partition
        table = f"arn:{partition}:dynamodb:{self.region}:{account}:table/{config.table_name}"
        arn = f"{table}/index/{BEACON_INDEX_PREFIX}*"
        _ack(
            self.functions.finder.access_policy,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
            f"Only the local table replica's indexes named {BEACON_INDEX_PREFIX}* (the toolkit's beacon indexes, "
            "one per beacon field): a field added later needs no policy change before its index exists. "
            "Query only; nothing on the table itself.",
        )

    def _tenant_roles(self) -> tuple[str, str] | tuple[str, str, str] | None:
        """(writer's, reader's[, finder's]) tenant-access role ARNs, where the region has tenant keys."""
        writer, reader = self.functions.writer.tenant_role, self.functions.reader.tenant_role
        if writer is None or reader is None:
            return None
        finder = self.functions.finder.tenant_role if self.functions.finder is not None else None
        if finder is None:
            return (writer.role_arn, reader.role_arn)
        return (writer.role_arn, reader.role_arn, finder.role_arn)

    def _application_audit(self, config: ToolkitConfig) -> dict[str, tuple[str, str] | None]:
        """The application roles whose key use is expected (AuditRules): without tenants, the application
        writer and reader on the records key; with tenants, their tenant-access roles on the tenant keys."""
        app = self.application
        if app is None:
            return {}
        if not config.tenants:
            return {"application_roles": (app.writer.role_arn, app.reader.role_arn)}
        if app.writer_tenant_role is None or app.reader_tenant_role is None:
            return {}
        return {"application_tenant_roles": (app.writer_tenant_role.role_arn, app.reader_tenant_role.role_arn)}

    def _signals(
        self, config: ToolkitConfig, mrk_arn: str, store_key_arns: Sequence[str], tenant_key_arns: Sequence[str]
    ) -> None:
        """The region's alarm topic and alarms; the deployment's dashboard in the primary region."""
        prefix = config.stack_prefix
        self.alarm_topic = AlarmTopic(
            self,
            "AlarmTopic",
            topic_name=alarm_topic_name(config),
            alarm_name_prefix=f"{prefix}-{self.region}-",
            admin_arns=config.key_admin_arns,
            removal_policy=removal_policy(config),
            event_rules=config.audit.enabled,
        )
        if config.audit.enabled:
            self.audit_rules = AuditRules(
                self,
                "AuditRules",
                prefix=prefix,
                region=self.region,
                key_arn=mrk_arn,
                writer_role_arn=self.functions.writer.role.role_arn,
                reader_role_arn=self.functions.reader.role.role_arn,
                finder_role_arn=self.functions.finder.role.role_arn if self.functions.finder is not None else None,
                topic_arn=self.alarm_topic.topic.topic_arn,
                tenant_key_arns=tenant_key_arns,
                tenant_roles=self._tenant_roles(),
                **self._application_audit(config),
                other_key_arns=[
                    *store_key_arns,
                    self.functions.logs_key.cfn_key.attr_arn,
                    self.alarm_topic.key.attr_arn,
                ],
            )
        self.alarms = RegionAlarms(
            self,
            "Alarms",
            specs=store_alarm_specs(config, self.region),
            functions={
                "writer": self.functions.writer.function,
                "reader": self.functions.reader.function,
                **({"finder": self.functions.finder.function} if self.functions.finder is not None else {}),
            },
            topic=self.alarm_topic.topic,
        )
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic.topic_arn)
        if self.region == config.primary_region:
            specs = {region: store_alarm_specs(config, region) for region in config.regions}
            self.dashboard = SignalsDashboard(
                self,
                "Dashboard",
                dashboard_name=prefix,
                regions=config.regions,
                table_name=config.table_name,
                alarm_names={region: [s.name for s in region_specs] for region, region_specs in specs.items()},
                clusters={r: cluster_identifier(config, r) for r in config.regions} if config.aurora else None,
                finder=bool(config.beacon_fields),
            )


def discovery_values(
    config: ToolkitConfig,
    mrk_arn: str,
    database: DatabaseAccess | None,
    *,
    tenant_key_ids: Mapping[str, str | None] | None = None,
    application: ApplicationRoles | None = None,
    beacons: BeaconAccess | None = None,
) -> dict[str, str]:
    """What an application of this region needs (README "Discovery"): the key, the table, the record
    options the functions use, for the Aurora store the region's endpoints and the functions' secrets, with
    tenants the tenants' key ids here and (with the application roles) their tenant-access roles, with the
    application roles and ``beacons`` the beacon fields and the region's beacon key (published only for an
    application: the Aurora store's ten parameters with tenants stay one GetParametersByPath page)."""
    values = {
        PARAM_RECORD_KEY_ARN: mrk_arn,
        PARAM_TABLE_NAME: config.table_name,
        PARAM_RECORD_OPTIONS: record_options_value(
            store=config.store,
            sensitive_fields=config.sensitive_fields,
            unsigned_attributes=config.unsigned_attributes,
            algorithm_suite=config.algorithm_suite,
            max_record_bytes=config.max_record_bytes,
        ),
    }
    if database is not None:
        values |= {
            PARAM_DB_WRITER_ENDPOINT: database.writer_host,
            PARAM_DB_READER_ENDPOINT: database.reader_host,
            PARAM_DB_PORT: database.port,
            PARAM_DB_NAME: database.database_name,
            PARAM_DB_WRITER_SECRET_ARN: database.writer_secret_arn,
            PARAM_DB_READER_SECRET_ARN: database.reader_secret_arn,
        }
    if tenant_key_ids is not None:
        values[PARAM_TENANT_KEYS] = tenant_keys_environment(tenant_key_ids)
    if application is not None and application.writer_tenant_role is not None:
        values[PARAM_WRITER_TENANT_ROLE_ARN] = application.writer_tenant_role.role_arn
    if application is not None and application.reader_tenant_role is not None:
        values[PARAM_READER_TENANT_ROLE_ARN] = application.reader_tenant_role.role_arn
    if beacons is not None:
        values |= {
            PARAM_BEACON_FIELDS: beacon_fields_environment(beacons.fields),
            PARAM_BEACON_KEY_ARN: beacons.key_arn,
        }
    return values


def store_alarm_specs(config: ToolkitConfig, region: str) -> list[AlarmSpec]:
    """The region's alarms: the functions' and the toolkit's own, then the store's (DynamoDB:
    replication toward the other regions; Aurora: the region's cluster and the database refusals)."""
    specs = region_alarm_specs(
        prefix=config.stack_prefix, region=region, regions=config.regions, table_name=config.table_name
    )
    if config.store == STORE_DYNAMODB:
        store = specs
    else:
        store = [s for s in specs if s.namespace != DYNAMODB_NAMESPACE] + aurora_alarm_specs(
            prefix=config.stack_prefix,
            region=region,
            cluster=cluster_identifier(config, region),
            table_name=config.table_name,
        )
    finder = (
        finder_alarm_specs(
            prefix=config.stack_prefix,
            region=region,
            table_name=config.table_name,
            aurora=config.store != STORE_DYNAMODB,
        )
        if config.beacon_fields
        else []
    )
    return store + finder + (audit_alarm_specs(config.stack_prefix, region) if config.audit.enabled else [])


def _ack(scope: Construct, rule_id: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


NO_VPC_REASON = (
    "The functions reach only regional AWS APIs (KMS, DynamoDB, CloudWatch Logs, X-Ray) over TLS "
    "with SigV4 and no private network resource; records leave the function already encrypted "
    "client-side. A VPC would add interface endpoints or NAT (cost, cold start) without reducing "
    "what the function can reach, which IAM already limits to one key and one table replica."
)
NO_ENV_KEY_REASON = (
    "The environment holds no secret (table name, key ARN, tuning options); Lambda encrypts it at rest with an "
    "AWS-managed key. A customer-managed key would need kms:Decrypt for the writer, which MrkToolkit-IAM2 forbids."
)
NO_DLQ_REASON = (
    "Invoked synchronously (RequestResponse): a dead-letter queue applies only to asynchronous "
    "invocations; every error is returned to the caller as a structured, retryable-or-not result."
)


def acknowledge_function_findings(functions: EncryptingFunctions, *, in_vpc: bool = False) -> None:
    """Every acknowledgement is scoped to one resource and one finding, with its reason."""
    for fn in (functions.writer, functions.reader, *([functions.finder] if functions.finder else [])):
        _ack(
            fn.tracing_policy,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing actions support only Resource '*'; this policy holds nothing else.",
        )
        if fn.network_policy is not None:
            acknowledge_network_policy(fn.network_policy)
        if not in_vpc:
            for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
                _ack(fn.function, f"{pack}::{pack}-LambdaInsideVPC", NO_VPC_REASON)
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            _ack(fn.function, f"{pack}::{pack}-LambdaDLQ", NO_DLQ_REASON)
        _ack(fn.function, "AwsSolutions::AwsSolutions-L1", RUNTIME_REASON)
        # The same findings in checkov's words (it reads skips from the template metadata).
        skips = [{"id": "CKV_AWS_116", "comment": NO_DLQ_REASON}]
        if not in_vpc:
            skips.append({"id": "CKV_AWS_117", "comment": NO_VPC_REASON})
        skips.append({"id": "CKV_AWS_173", "comment": ENV_NO_SECRET_REASON if in_vpc else NO_ENV_KEY_REASON})
        fn.function.node.default_child.add_metadata("checkov", {"skip": skips})
