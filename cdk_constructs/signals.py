"""Signals of one region: an encrypted alarm topic, the alarms, and the deployment's dashboard.

The alarms watch the metrics the functions emit (CloudWatch embedded metric format; the names come
from lambda_src/record_crypto/observability.py, the one place both sides read them), the Lambda
service's own Errors and Throttles, and the global table's replication metrics.

Where the replication metrics live: DynamoDB publishes ``ReplicationLatency`` and
``PendingReplicationCount`` (namespace ``AWS/DynamoDB``, dimensions ``TableName`` and
``ReceivingRegion``) in the region a write was made in, the *source*, for each receiving region.
An alarm sees only the metrics of its own region, so the alarms on replication toward region R live
in every other region (each region writes: global tables take writes everywhere).

KMS publishes no per-key or per-caller throttling metric (the documented ``AWS/Usage`` ``CallCount``
of KMS counts the whole account's requests per quota, region-wide): the KMS throttling alarm watches
the functions' own ``KmsThrottles`` count (every throttled KMS answer, retried or not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.key_policies import admin_statement
from cloud_assembly.audit_events import (
    DENIED_BURST_CALLS,
    DENIED_BURST_PERIOD_SECONDS,
    RULE_DENIED_KEY_CALLS,
    rule_name,
)
from lambda_src.record_crypto.observability import (
    AURORA_REPLICATION_LAG,
    AURORA_RPO_LAG,
    DATA_KEY_CACHE_HITS,
    DATABASE_REFUSALS,
    DIMENSION_ERROR_TYPE,
    DIMENSION_OPERATION,
    DIMENSION_TABLE,
    FINDER_DATABASE_REFUSALS,
    FINDER_REFUSALS,
    KMS_CALLS,
    KMS_THROTTLES,
    NAMESPACE,
    OPERATION_FIND,
    OPERATION_OF,
    OPERATION_READ,
    OPERATION_WRITE,
    OPERATIONS,
    RDS_NAMESPACE,
    RECORDS_READ,
    RECORDS_WRITTEN,
    REFUSALS,
    SECURITY_REFUSALS,
)

LAMBDA_NAMESPACE = "AWS/Lambda"
EVENTS_NAMESPACE = "AWS/Events"
DYNAMODB_NAMESPACE = "AWS/DynamoDB"
# Replication: sustained lag, not a blip (3 periods of 5 minutes in a row).
REPLICATION_LATENCY_MS = 60_000
PENDING_REPLICATION_ITEMS = 1_000


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm as the review, the emulator and the tests read it (names, not tokens, except a
    function's name, which is filled in by the construct)."""

    name: str
    what: str  # the name without prefix and region, e.g. "reader-security-refusals"
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    period_seconds: int
    threshold: float
    evaluation_periods: int
    description: str
    function: str | None = None  # "writer"/"reader": the FunctionName dimension is that function's name


def alarm_name(prefix: str, region: str, what: str) -> str:
    return f"{prefix}-{region}-{what}"


def _spec(prefix: str, region: str, what: str, **fields: Any) -> AlarmSpec:
    return AlarmSpec(name=alarm_name(prefix, region, what), what=what, **fields)


def region_alarm_specs(*, prefix: str, region: str, regions: Sequence[str], table_name: str) -> list[AlarmSpec]:
    """Every alarm of ``region``: per function Errors, Throttles, security refusals and KMS
    throttling; per other region, replication latency and pending items toward it."""
    specs: list[AlarmSpec] = []
    for kind, operation in OPERATION_OF.items():
        specs += _lambda_alarm_specs(prefix, region, kind)
        specs += _record_alarm_specs(
            prefix, region, kind, ((DIMENSION_TABLE, table_name), (DIMENSION_OPERATION, operation))
        )
    for receiving in regions:
        if receiving != region:
            specs += _replication_alarm_specs(prefix, region, receiving, table_name)
    return specs


def finder_alarm_specs(*, prefix: str, region: str, table_name: str, aurora: bool = False) -> list[AlarmSpec]:
    """The finder's alarms of ``region`` (beacon fields only): its Errors and Throttles, security refusals
    (a planted or changed beacon: TamperedRecord) and KMS throttling, like the writer's and reader's; and
    its refusals by type: TooManyCandidates (a lookup too broad for its beacon's length) and, on the
    Aurora store, DatabaseUnavailable."""
    ours = ((DIMENSION_TABLE, table_name), (DIMENSION_OPERATION, OPERATION_FIND))
    refusals = [*FINDER_REFUSALS, *(FINDER_DATABASE_REFUSALS if aurora else ())]
    return [
        *_lambda_alarm_specs(prefix, region, "finder"),
        *_record_alarm_specs(prefix, region, "finder", ours),
        *(_finder_refusal_spec(prefix, region, error_type, table_name) for error_type in refusals),
    ]


def _finder_refusal_spec(prefix: str, region: str, error_type: str, table_name: str) -> AlarmSpec:
    slug = "".join(f"-{c.lower()}" if c.isupper() else c for c in error_type).lstrip("-")
    why = (
        "the cluster is unreachable or changing roles"
        if error_type in FINDER_DATABASE_REFUSALS
        else "lookups match more candidates than the limit: a common value, or a beacon too short for the table"
    )
    return _spec(
        prefix,
        region,
        f"finder-{slug}",
        namespace=NAMESPACE,
        metric=REFUSALS,
        dimensions=(
            (DIMENSION_TABLE, table_name),
            (DIMENSION_OPERATION, OPERATION_FIND),
            (DIMENSION_ERROR_TYPE, error_type),
        ),
        statistic="Sum",
        period_seconds=300,
        threshold=5,
        evaluation_periods=1,
        description=f"The finder in {region} refused 5 or more lookups with {error_type} in 5 minutes: {why}",
    )


def _lambda_alarm_specs(prefix: str, region: str, kind: str) -> list[AlarmSpec]:
    """Lambda's own metrics of one function: Errors and Throttles."""
    return [
        _spec(
            prefix,
            region,
            f"{kind}-errors",
            namespace=LAMBDA_NAMESPACE,
            metric="Errors",
            dimensions=(),
            statistic="Sum",
            period_seconds=300,
            threshold=1,
            evaluation_periods=1,
            description=(
                f"The {kind} function failed (crash, timeout or failed cold start) in {region}; refusals are "
                "results, not errors"
            ),
            function=kind,
        ),
        _spec(
            prefix,
            region,
            f"{kind}-throttles",
            namespace=LAMBDA_NAMESPACE,
            metric="Throttles",
            dimensions=(),
            statistic="Sum",
            period_seconds=300,
            threshold=1,
            evaluation_periods=1,
            description=(f"Lambda throttled the {kind} function in {region} (reserved concurrency reached)"),
            function=kind,
        ),
    ]


def _record_alarm_specs(prefix: str, region: str, kind: str, ours: tuple[tuple[str, str], ...]) -> list[AlarmSpec]:
    """The toolkit's metrics of one function (``ours``: its table and operation): security
    refusals and KMS throttling."""
    return [
        _spec(
            prefix,
            region,
            f"{kind}-security-refusals",
            namespace=NAMESPACE,
            metric=SECURITY_REFUSALS,
            dimensions=ours,
            statistic="Sum",
            period_seconds=60,
            threshold=1,
            evaluation_periods=1,
            description=(
                f"SECURITY: the {kind} in {region} refused a record that was tampered with or made with a wrong "
                "key (TamperedRecord, TamperedCiphertext, ContextMismatch, UnexpectedAlgorithm, WrongKey); "
                "one is enough to investigate"
            ),
        ),
        _spec(
            prefix,
            region,
            f"{kind}-kms-throttles",
            namespace=NAMESPACE,
            metric=KMS_THROTTLES,
            dimensions=ours,
            statistic="Sum",
            period_seconds=300,
            threshold=1,
            evaluation_periods=1,
            description=(
                f"KMS throttled the {kind}'s calls in {region} (retried or refused): the account's KMS request "
                "quota is near; consider the data-key cache or a quota increase"
            ),
        ),
    ]


def _replication_alarm_specs(prefix: str, region: str, receiving: str, table_name: str) -> list[AlarmSpec]:
    """DynamoDB's replication metrics from ``region`` toward ``receiving``: latency and pending items."""
    replica = (("ReceivingRegion", receiving), ("TableName", table_name))
    return [
        _spec(
            prefix,
            region,
            f"replication-latency-to-{receiving}",
            namespace=DYNAMODB_NAMESPACE,
            metric="ReplicationLatency",
            dimensions=replica,
            statistic="Average",
            period_seconds=300,
            threshold=REPLICATION_LATENCY_MS,
            evaluation_periods=3,
            description=(
                f"Writes made in {region} take over {REPLICATION_LATENCY_MS // 1000} s to reach {receiving} "
                "(15 minutes in a row)"
            ),
        ),
        _spec(
            prefix,
            region,
            f"pending-replication-to-{receiving}",
            namespace=DYNAMODB_NAMESPACE,
            metric="PendingReplicationCount",
            dimensions=replica,
            statistic="Maximum",
            period_seconds=300,
            threshold=PENDING_REPLICATION_ITEMS,
            evaluation_periods=3,
            description=(
                f"Over {PENDING_REPLICATION_ITEMS} writes made in {region} wait to reach {receiving} "
                "(15 minutes in a row)"
            ),
        ),
    ]


def audit_alarm_specs(prefix: str, region: str) -> list[AlarmSpec]:
    """A burst of denied calls on the region's records key: the denied-calls rule's matches
    (EventBridge's own ``MatchedEvents`` metric of the rule, which has no target)."""
    rule = rule_name(prefix, region, RULE_DENIED_KEY_CALLS)
    return [
        _spec(
            prefix,
            region,
            RULE_DENIED_KEY_CALLS,
            namespace=EVENTS_NAMESPACE,
            metric="MatchedEvents",
            dimensions=(("RuleName", rule),),
            statistic="Sum",
            period_seconds=DENIED_BURST_PERIOD_SECONDS,
            threshold=DENIED_BURST_CALLS,
            evaluation_periods=1,
            description=(
                f"SECURITY: {DENIED_BURST_CALLS} or more denied calls on the records key of {region} within "
                f"{DENIED_BURST_PERIOD_SECONDS // 60} minutes (rule {rule}): a probe, a broken deployment or a "
                "revoked permission; read them with `python -m offline audit --region "
                f"{region}`"
            ),
        )
    ]


# -- the Aurora PostgreSQL store ------------------------------------------------------------------
# A secondary's storage-level lag behind the primary (normally well under a second), sustained.
AURORA_REPLICATION_LAG_MS = 10_000
# How far the secondary's recovery point lags: what an unplanned failover now would lose.
AURORA_RPO_LAG_MS = 60_000
AURORA_CPU_PERCENT = 80
# One connection per warm function container; well below max_connections of the smallest class
# a global database runs on (db.r5/r6g.large: about 1,800).
AURORA_CONNECTIONS = 1_000


def aurora_alarm_specs(*, prefix: str, region: str, cluster: str, table_name: str) -> list[AlarmSpec]:
    """The Aurora store's alarms of ``region``: its cluster's replication lag and RPO lag (every
    cluster has them: whichever is a secondary after a switchover publishes them; the primary's stay
    missing, not breaching), CPU and connections, and the functions' DatabaseUnavailable and
    ReadOnlyRegion refusals."""
    dims = (("DBClusterIdentifier", cluster),)
    specs = [
        _cluster_spec(
            prefix,
            region,
            "aurora-replication-lag",
            AURORA_REPLICATION_LAG,
            dims,
            "Average",
            AURORA_REPLICATION_LAG_MS,
            3,
            f"The {cluster} cluster in {region} lags the primary by over "
            f"{AURORA_REPLICATION_LAG_MS // 1000} s (15 minutes in a row): readers there see old rows",
        ),
        _cluster_spec(
            prefix,
            region,
            "aurora-rpo-lag",
            AURORA_RPO_LAG,
            dims,
            "Maximum",
            AURORA_RPO_LAG_MS,
            3,
            f"The recovery point of the {cluster} cluster in {region} is over {AURORA_RPO_LAG_MS // 1000} s "
            "behind the primary: a failover to it now would lose that much",
        ),
        _cluster_spec(
            prefix,
            region,
            "aurora-cpu",
            "CPUUtilization",
            dims,
            "Average",
            AURORA_CPU_PERCENT,
            3,
            f"The {cluster} cluster in {region} runs above {AURORA_CPU_PERCENT}% CPU (15 minutes)",
        ),
        _cluster_spec(
            prefix,
            region,
            "aurora-connections",
            "DatabaseConnections",
            dims,
            "Maximum",
            AURORA_CONNECTIONS,
            3,
            f"Over {AURORA_CONNECTIONS} connections to the {cluster} cluster in {region}: near max_connections",
        ),
    ]
    for kind, types in DATABASE_REFUSALS.items():
        for error_type in types:
            specs.append(_database_refusal_spec(prefix, region, kind, error_type, table_name))
    return specs


def _cluster_spec(
    prefix: str,
    region: str,
    what: str,
    metric: str,
    dims: tuple[tuple[str, str], ...],
    statistic: str,
    threshold: float,
    periods: int,
    description: str,
) -> AlarmSpec:
    return _spec(
        prefix,
        region,
        what,
        namespace=RDS_NAMESPACE,
        metric=metric,
        dimensions=dims,
        statistic=statistic,
        period_seconds=300,
        threshold=threshold,
        evaluation_periods=periods,
        description=description,
    )


def _database_refusal_spec(prefix: str, region: str, kind: str, error_type: str, table_name: str) -> AlarmSpec:
    operation = OPERATION_OF[kind]
    slug = "".join(f"-{c.lower()}" if c.isupper() else c for c in error_type).lstrip("-")
    return _spec(
        prefix,
        region,
        f"{kind}-{slug}",
        namespace=NAMESPACE,
        metric=REFUSALS,
        dimensions=(
            (DIMENSION_TABLE, table_name),
            (DIMENSION_OPERATION, operation),
            (DIMENSION_ERROR_TYPE, error_type),
        ),
        statistic="Sum",
        period_seconds=300,
        threshold=5,
        evaluation_periods=1,
        description=(
            f"The {kind} in {region} refused 5 or more requests with {error_type} in 5 minutes: "
            + (
                "the cluster is unreachable or changing roles"
                if error_type == "DatabaseUnavailable"
                else "writes reach a read-only cluster: callers write in a secondary region, or a switchover is on"
            )
        ),
    )


def alarm_arn(region: str, name: str) -> str:
    return f"arn:{Aws.PARTITION}:cloudwatch:{region}:{Aws.ACCOUNT_ID}:alarm:{name}"


class AlarmTopic(Construct):
    """The region's alarm topic, encrypted with a customer-managed key of its own.

    Props: ``topic_name``; ``alarm_name_prefix`` (only alarms of this account and region whose
    name starts with it may publish, and use the key); ``admin_arns``; ``removal_policy`` (key);
    ``event_rules`` (EventBridge may publish too, for the rules of this account and region whose
    name starts with ``alarm_name_prefix``: the audit rules; default False).
    The key policy lets CloudWatch use the key only for this topic (SNS's encryption context), on
    behalf of those alarms (``aws:SourceAccount``, ``aws:SourceArn``: no confused deputy). The
    topic policy refuses any request not made over TLS.
    Attributes: ``topic``, ``key`` (``kms.CfnKey``), ``topic_arn``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic_name: str,
        alarm_name_prefix: str,
        admin_arns: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        event_rules: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        # A fixed name: users subscribe to it, and the key policy names it without a cycle.
        self.topic_arn = f"arn:{Aws.PARTITION}:sns:{region}:{Aws.ACCOUNT_ID}:{topic_name}"
        publishers = {
            "CloudWatchAlarms": (
                "cloudwatch.amazonaws.com",
                f"arn:{Aws.PARTITION}:cloudwatch:{region}:{Aws.ACCOUNT_ID}:alarm:{alarm_name_prefix}*",
            )
        }
        if event_rules:
            # The audit rules (cdk_constructs/audit_rules.py) share the alarms' name prefix.
            publishers["AuditEventRules"] = (
                "events.amazonaws.com",
                f"arn:{Aws.PARTITION}:events:{region}:{Aws.ACCOUNT_ID}:rule/{alarm_name_prefix}*",
            )
        conditions = {
            sid: {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}, "ArnLike": {"aws:SourceArn": source}}
            for sid, (_, source) in publishers.items()
        }
        self.key = self._key(topic_name, admin_arns, publishers, conditions)
        self.key.apply_removal_policy(removal_policy)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=topic_name,
            display_name=f"{alarm_name_prefix.rstrip('-')} alarms",
            master_key=kms.Key.from_key_arn(self, "ImportedKey", self.key.attr_arn),
            enforce_ssl=True,
        )
        for sid, (service, _) in publishers.items():
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"{sid}Publish",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["sns:Publish"],
                    resources=[self.topic.topic_arn],
                    conditions=conditions[sid],
                )
            )

    def _key(
        self,
        topic_name: str,
        admin_arns: Sequence[str],
        publishers: Mapping[str, tuple[str, str]],
        conditions: Mapping[str, dict[str, Any]],
    ) -> kms.CfnKey:
        """The topic's key: each publishing service may use it only for this topic, on behalf of
        the alarms (or the audit rules) of this region."""
        use = [
            iam.PolicyStatement(
                sid=f"{sid}ThroughSns",
                principals=[iam.ServicePrincipal(service)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    **conditions[sid],
                    "StringEquals": {
                        **conditions[sid]["StringEquals"],
                        "kms:EncryptionContext:aws:sns:topicArn": self.topic_arn,
                    },
                },
            )
            for sid, (service, _) in publishers.items()
        ]
        return kms.CfnKey(
            self,
            "Key",
            description=(f"Encrypts the alarm topic {topic_name}"),
            enable_key_rotation=True,
            key_spec="SYMMETRIC_DEFAULT",
            key_usage="ENCRYPT_DECRYPT",
            pending_window_in_days=30,
            key_policy=iam.PolicyDocument(statements=[admin_statement(admin_arns), *use]),
        )


class RegionAlarms(Construct):
    """The alarms of one region (``region_alarm_specs``), each notifying ``topic`` when it fires
    and when it recovers; missing data is not breaching (no traffic is not a problem).

    Props: ``specs``; ``functions``: "writer"/"reader" -> the function whose name fills the
    ``FunctionName`` dimension; ``topic``. Attribute: ``alarms`` (name -> alarm).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: Sequence[AlarmSpec],
        functions: Mapping[str, lambda_.IFunction],
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        action = cw_actions.SnsAction(topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for spec in specs:
            dimensions = dict(spec.dimensions)
            if spec.function is not None:
                dimensions["FunctionName"] = functions[spec.function].function_name
            metric = cloudwatch.Metric(
                namespace=spec.namespace,
                metric_name=spec.metric,
                dimensions_map=dimensions,
                statistic=spec.statistic,
                period=Duration.seconds(spec.period_seconds),
            )
            alarm = metric.create_alarm(
                self,
                spec.what.title().replace("-", ""),
                alarm_name=spec.name,
                alarm_description=spec.description,
                threshold=spec.threshold,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.evaluation_periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms[spec.name] = alarm


class SignalsDashboard(Construct):
    """One dashboard for the whole deployment (in the primary region), a row per region: records
    written and read, refusals by type, KMS calls, throttles and cache hits, the store's own widget
    (the DynamoDB store: replication toward the other regions; the Aurora store: the region's
    cluster, its replication and RPO lag, CPU and connections), and the region's alarms (by ARN:
    alarm names are fixed, so no stack depends on another region's). Props: ``dashboard_name``;
    ``regions``; ``table_name``; ``alarm_names`` (region -> names); ``clusters`` (region -> the
    Aurora cluster's identifier; empty for the DynamoDB store). Attribute: ``dashboard``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        regions: Sequence[str],
        table_name: str,
        alarm_names: Mapping[str, Sequence[str]],
        clusters: Mapping[str, str] | None = None,
        finder: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.clusters = dict(clusters or {})
        self.finder = finder
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name, default_interval=Duration.hours(3)
        )
        for region in regions:
            self.dashboard.add_widgets(cloudwatch.TextWidget(markdown=f"## {region}", width=24, height=1))
            self.dashboard.add_widgets(*self._row(region, regions, table_name, alarm_names[region]))
            if finder:
                self.dashboard.add_widgets(self._finder(region, table_name))

    @staticmethod
    def _ours(region: str, table_name: str, name: str, operation: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map={DIMENSION_TABLE: table_name, DIMENSION_OPERATION: operation},
            statistic="Sum",
            period=Duration.minutes(5),
            region=region,
            label=f"{name} ({operation})",
        )

    def _row(
        self, region: str, regions: Sequence[str], table_name: str, alarms: Sequence[str]
    ) -> list[cloudwatch.IWidget]:
        ours = lambda name, op: self._ours(region, table_name, name, op)  # noqa: E731
        refusals = cloudwatch.MathExpression(
            expression=(
                f"SEARCH('{{{NAMESPACE},{DIMENSION_TABLE},{DIMENSION_OPERATION},{DIMENSION_ERROR_TYPE}}} "
                f'MetricName="{REFUSALS}" {DIMENSION_TABLE}="{table_name}"\', \'Sum\', 300)'
            ),
            label="",
            search_region=region,
            period=Duration.minutes(5),
        )
        store_widget = self._aurora(region) if self.clusters else self._replication(region, regions, table_name)
        return [
            cloudwatch.GraphWidget(
                title=f"Records ({region})",
                region=region,
                left=[ours(RECORDS_WRITTEN, OPERATION_WRITE), ours(RECORDS_READ, OPERATION_READ)],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title=f"Refusals by type ({region})",
                region=region,
                left=[refusals, *(ours(SECURITY_REFUSALS, op) for op in OPERATIONS)],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title=f"KMS ({region})",
                region=region,
                left=[ours(KMS_CALLS, op) for op in OPERATIONS] + [ours(DATA_KEY_CACHE_HITS, op) for op in OPERATIONS],
                right=[ours(KMS_THROTTLES, op) for op in OPERATIONS],
                width=6,
            ),
            store_widget,
            cloudwatch.AlarmStatusWidget(
                title=f"Alarms ({region})",
                alarms=[
                    cloudwatch.Alarm.from_alarm_arn(self, f"{region}-{name}", alarm_arn(region, name))
                    for name in alarms
                ],
                width=24,
                height=3,
            ),
        ]

    def _finder(self, region: str, table_name: str) -> cloudwatch.IWidget:
        """Lookups of the region's finder (beacon fields only): its refusals by type (TooManyCandidates,
        TamperedRecord, ...), its security refusals, its KMS calls (0 per lookup once warm) and throttles."""
        ours = lambda name: self._ours(region, table_name, name, OPERATION_FIND)  # noqa: E731
        refusals = cloudwatch.MathExpression(
            expression=(
                f"SEARCH('{{{NAMESPACE},{DIMENSION_TABLE},{DIMENSION_OPERATION},{DIMENSION_ERROR_TYPE}}} "
                f'MetricName="{REFUSALS}" {DIMENSION_TABLE}="{table_name}" {DIMENSION_OPERATION}="{OPERATION_FIND}"\', '
                "'Sum', 300)"
            ),
            label="",
            search_region=region,
            period=Duration.minutes(5),
        )
        return cloudwatch.GraphWidget(
            title=f"Finder ({region})",
            region=region,
            left=[refusals, ours(SECURITY_REFUSALS)],
            right=[ours(KMS_CALLS), ours(KMS_THROTTLES)],
            width=24,
            height=4,
        )

    def _aurora(self, region: str) -> cloudwatch.IWidget:
        cluster = self.clusters[region]

        def rds(metric: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=RDS_NAMESPACE,
                metric_name=metric,
                dimensions_map={"DBClusterIdentifier": cluster},
                statistic=statistic,
                period=Duration.minutes(5),
                region=region,
                label=label,
            )

        return cloudwatch.GraphWidget(
            title=f"Aurora cluster {cluster}",
            region=region,
            left=[
                rds(AURORA_REPLICATION_LAG, "Average", "replication lag (ms)"),
                rds(AURORA_RPO_LAG, "Maximum", "RPO lag (ms)"),
            ],
            right=[rds("CPUUtilization", "Average", "CPU (%)"), rds("DatabaseConnections", "Maximum", "connections")],
            width=6,
        )

    @staticmethod
    def _replication(region: str, regions: Sequence[str], table_name: str) -> cloudwatch.IWidget:
        replication = [
            cloudwatch.Metric(
                namespace=DYNAMODB_NAMESPACE,
                metric_name="ReplicationLatency",
                dimensions_map={"TableName": table_name, "ReceivingRegion": other},
                statistic="Average",
                period=Duration.minutes(5),
                region=region,
                label=f"to {other} (ms)",
            )
            for other in regions
            if other != region
        ]
        return cloudwatch.GraphWidget(title=f"Replication from {region}", region=region, left=replication, width=6)
