"""The signals, read back from what is DEPLOYED: each region's alarms and the topic they notify,
and (on the emulator) the functions' own metric lines fed to CloudWatch so that an alarm's
decision can be taken on what the main job really did.

Required per region, found by what an alarm watches (not by its name): for the writer and the
reader, Lambda's ``Errors`` and ``Throttles`` (``FunctionName``), the functions' ``SecurityRefusals``
(any one fires: threshold at most 1, missing data not breaching) and ``KmsThrottles``; for every
other region R, the global table's ``ReplicationLatency`` and ``PendingReplicationCount`` toward R
(DynamoDB publishes them in the region the writes were made in). Every such alarm must notify, on
ALARM, an SNS topic of its own region encrypted with a customer-managed key of that region whose key
policy lets CloudWatch use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lambda_src.record_crypto.observability import (
    AURORA_CLUSTER_METRICS,
    DATABASE_REFUSALS,
    DIMENSION_ERROR_TYPE,
    DIMENSION_OPERATION,
    DIMENSION_TABLE,
    FINDER_DATABASE_REFUSALS,
    FINDER_REFUSALS,
    KMS_THROTTLES,
    NAMESPACE,
    OPERATION_FIND,
    OPERATION_OF,
    RDS_NAMESPACE,
    REFUSALS,
    SECURITY_REFUSALS,
)
from offline.emulator.emf import Datum, extract
from offline.verification.checks import Capability, Check, Environment, NamedCheck, check
from policy_engine import Caller, Decision, Request, authorize

FIRES_ON_ONE = ("GreaterThanOrEqualToThreshold", "GreaterThanThreshold")


@dataclass(frozen=True)
class Watch:
    """What one required alarm watches."""

    label: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    security: bool = False


def required_watches(
    region: str,
    regions: Iterable[str],
    table_name: str,
    function_names: Mapping[tuple[str, str], str],
    cluster: str | None = None,
) -> list[Watch]:
    """What the alarms of ``region`` must watch; ``cluster`` (the region's Aurora cluster) for the
    Aurora store, whose replication is the cluster's, not DynamoDB's."""
    out: list[Watch] = []
    for kind, operation in OPERATION_OF.items():
        fn = (("FunctionName", function_names[(region, kind)]),)
        ours = tuple(sorted(((DIMENSION_TABLE, table_name), (DIMENSION_OPERATION, operation))))
        out += [
            Watch(f"{kind} Errors", "AWS/Lambda", "Errors", fn),
            Watch(f"{kind} Throttles", "AWS/Lambda", "Throttles", fn),
            Watch(f"{kind} {SECURITY_REFUSALS}", NAMESPACE, SECURITY_REFUSALS, ours, security=True),
            Watch(f"{kind} {KMS_THROTTLES}", NAMESPACE, KMS_THROTTLES, ours),
        ]
    if (region, "finder") in function_names:  # beacon fields: the finder's alarms too
        out += _finder_watches(table_name, function_names[(region, "finder")], aurora=cluster is not None)
    if cluster is not None:
        return out + _aurora_watches(table_name, cluster)
    for other in regions:
        if other != region:
            dims = tuple(sorted((("TableName", table_name), ("ReceivingRegion", other))))
            out += [
                Watch(f"ReplicationLatency to {other}", "AWS/DynamoDB", "ReplicationLatency", dims),
                Watch(f"PendingReplicationCount to {other}", "AWS/DynamoDB", "PendingReplicationCount", dims),
            ]
    return out


def _finder_watches(table_name: str, function_name: str, *, aurora: bool) -> list[Watch]:
    fn = (("FunctionName", function_name),)
    ours = tuple(sorted(((DIMENSION_TABLE, table_name), (DIMENSION_OPERATION, OPERATION_FIND))))
    out = [
        Watch("finder Errors", "AWS/Lambda", "Errors", fn),
        Watch("finder Throttles", "AWS/Lambda", "Throttles", fn),
        Watch(f"finder {SECURITY_REFUSALS}", NAMESPACE, SECURITY_REFUSALS, ours, security=True),
        Watch(f"finder {KMS_THROTTLES}", NAMESPACE, KMS_THROTTLES, ours),
    ]
    for error_type in (*FINDER_REFUSALS, *(FINDER_DATABASE_REFUSALS if aurora else ())):
        dims = tuple(sorted((*ours, (DIMENSION_ERROR_TYPE, error_type))))
        out.append(Watch(f"finder {REFUSALS} {error_type}", NAMESPACE, REFUSALS, dims))
    return out


def _aurora_watches(table_name: str, cluster: str) -> list[Watch]:
    out = [
        Watch(f"{m} of {cluster}", RDS_NAMESPACE, m, (("DBClusterIdentifier", cluster),))
        for m in AURORA_CLUSTER_METRICS
    ]
    for kind, types in DATABASE_REFUSALS.items():
        for error_type in types:
            dims = (
                (DIMENSION_TABLE, table_name),
                (DIMENSION_OPERATION, OPERATION_OF[kind]),
                (DIMENSION_ERROR_TYPE, error_type),
            )
            out.append(Watch(f"{kind} {REFUSALS} {error_type}", NAMESPACE, REFUSALS, tuple(sorted(dims))))
    return out


def _dims(alarm: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((d["Name"], d["Value"]) for d in alarm.get("Dimensions", [])))


def find_alarm(alarms: Iterable[Mapping[str, Any]], watch: Watch) -> Mapping[str, Any] | None:
    for alarm in alarms:
        if (alarm.get("Namespace"), alarm.get("MetricName"), _dims(alarm)) == (
            watch.namespace,
            watch.metric,
            watch.dimensions,
        ):
            return alarm
    return None


@dataclass
class SignalsReader:
    """``client(service, region)`` gives an API client (the emulator's or a real account's)."""

    client: Callable[[str, str], Any]

    def alarms(self, region: str) -> list[dict[str, Any]]:
        pages = self.client("cloudwatch", region).get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
        return [a for page in pages for a in page.get("MetricAlarms", [])]

    def topic_problem(self, region: str, topic_arn: str, alarm_arn: str) -> str | None:
        """Why the alarm ``alarm_arn`` could not notify ``topic_arn`` as an encrypted topic of
        ``region`` (decided on the deployed key policy by ``policy_engine``), or None."""
        if topic_arn.split(":")[2:4] != ["sns", region]:
            return f"{topic_arn} is not an SNS topic of {region}"
        attributes = self.client("sns", region).get_topic_attributes(TopicArn=topic_arn)["Attributes"]
        key_ref = attributes.get("KmsMasterKeyId")
        if not key_ref:
            return f"the topic {topic_arn} is not encrypted (no KmsMasterKeyId)"
        kms = self.client("kms", region)
        meta = kms.describe_key(KeyId=key_ref)["KeyMetadata"]
        if meta.get("KeyManager") != "CUSTOMER" or meta["Arn"].split(":")[3] != region:
            return f"the topic {topic_arn} is encrypted with {key_ref}, not a customer-managed key of {region}"
        policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
        decision = cloudwatch_may_use(policy, meta["Arn"], topic_arn, alarm_arn)
        if not decision.allowed:
            return f"CloudWatch may not use {meta['Arn']} for this alarm's notifications: {decision.reason}"
        return None


def cloudwatch_may_use(key_policy: Any, key_arn: str, topic_arn: str, alarm_arn: str) -> Decision:
    """May CloudWatch, notifying for ``alarm_arn``, have SNS encrypt for ``topic_arn`` with the key?
    (the request SNS makes to KMS on CloudWatch's behalf: GenerateDataKey with the topic's context)."""
    account = alarm_arn.split(":")[4]
    keys = {
        "aws:SourceAccount": account,
        "aws:SourceArn": alarm_arn,
        "kms:EncryptionContext:aws:sns:topicArn": topic_arn,
        "kms:EncryptionContextKeys": ["aws:sns:topicArn"],
        "kms:CallerAccount": account,
    }
    return authorize(
        Request(Caller(account, service="cloudwatch.amazonaws.com"), "kms:GenerateDataKey", key_arn, keys),
        resource_policy=("key policy", key_policy),
        resource_policy_required=True,
    )


def alarm_checks(
    reader: SignalsReader,
    regions: tuple[str, ...],
    table_name: str,
    function_names: Mapping[tuple[str, str], str],
    clusters: Callable[[], Mapping[str, str]] | None = None,
) -> list[NamedCheck]:
    """Per region: every required watch has an alarm notifying an encrypted topic CloudWatch may
    use. ``clusters`` (read when the check runs): region -> its Aurora cluster, for that store."""

    def region_check(region: str) -> str:
        alarms = reader.alarms(region)
        topics: set[str] = set()
        cluster = clusters()[region] if clusters is not None else None
        watches = required_watches(region, regions, table_name, function_names, cluster)
        for watch in watches:
            alarm = find_alarm(alarms, watch)
            assert alarm is not None, f"no alarm in {region} watches {watch.label} ({watch.namespace})"
            name = alarm["AlarmName"]
            assert alarm.get("ActionsEnabled", True) and alarm.get("AlarmActions"), f"{name} notifies nobody"
            if watch.security:
                assert alarm.get("ComparisonOperator") in FIRES_ON_ONE and float(alarm["Threshold"]) <= 1, (
                    f"{name} does not fire on one {SECURITY_REFUSALS}: {alarm.get('ComparisonOperator')} "
                    f"{alarm.get('Threshold')}"
                )
                assert alarm.get("TreatMissingData") == "notBreaching", f"{name}: missing data must not breach"
            for action in alarm["AlarmActions"]:
                problem = reader.topic_problem(region, action, alarm["AlarmArn"])
                assert problem is None, f"{name}: {problem}"
                topics.add(action.rsplit(":", 1)[1])
        what = "cluster, database refusals" if cluster is not None else "replication"
        return (
            f"{len(watches)} alarms (functions, security refusals, KMS throttling, {what}), notifying {sorted(topics)}"
        )

    subject = "its cluster" if clusters is not None else "replication"
    return [
        (
            f"deployed: {region} alarms on its functions and {subject} notify an encrypted topic",
            _bind(region_check, region),
        )
        for region in regions
    ]


def _bind(fn: Callable[[str], str], region: str) -> Callable[[], str]:
    return lambda: fn(region)


# -- the emulator: the functions' metric lines through CloudWatch, and an alarm's decision ---------
def publish_emf(client: Callable[[str, str], Any], logs_by_region: Mapping[str, str]) -> dict[str, list[Datum]]:
    """EMULATION of CloudWatch Logs' EMF extraction: the functions' metric lines of each region go to
    that region's CloudWatch (PutMetricData). Returns the data points by region."""
    out: dict[str, list[Datum]] = {}
    for region, text in logs_by_region.items():
        data = out[region] = extract(text.splitlines())
        cloudwatch = client("cloudwatch", region)
        for i in range(0, len(data), 500):
            by_namespace: dict[str, list[dict[str, Any]]] = {}
            for d in data[i : i + 500]:
                by_namespace.setdefault(d.namespace, []).append(
                    {
                        "MetricName": d.name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in d.dimensions],
                        "Timestamp": datetime.fromtimestamp(d.timestamp_ms / 1000, UTC),
                        "Value": d.value,
                        "Unit": d.unit,
                    }
                )
            for namespace, metric_data in by_namespace.items():
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=metric_data)
    return out


def tamper_alarms_check() -> Check:
    return check(
        "signals: the main job's tamper refusals reach the security alarms, which fire (emulated evaluation)",
        _tamper_alarms,
        Capability.FUNCTION_LOGS,
        Capability.EVALUATE_ALARMS,
    )


def _tamper_alarms(env: Environment) -> str:
    """The functions' metric lines go to CloudWatch as CloudWatch Logs would put them; the reader's
    security alarm of each replica region, where the main job tampered with records, must then
    breach (on AWS, CloudWatch does both itself, minutes later)."""
    published = publish_emf(env.client, env.logs_by_region())
    reader = SignalsReader(env.client)
    dims = tuple(sorted(((DIMENSION_TABLE, env.table_name), (DIMENSION_OPERATION, "read"))))
    seen = []
    for region in env.replica_regions:
        refused = sum(
            d.value for d in published.get(region, []) if d.name == SECURITY_REFUSALS and d.dimensions == dims
        )
        assert refused >= 1, f"the tamper checks in {region} left no SecurityRefusals metric line"
        alarm = find_alarm(reader.alarms(region), Watch("", NAMESPACE, SECURITY_REFUSALS, dims))
        assert alarm is not None, f"no alarm in {region} watches the reader's SecurityRefusals"
        breaching = breaching_periods(env.client, region, alarm)
        assert breaching, f"{alarm['AlarmName']} would not fire on {refused:.0f} security refusals"
        seen.append(f"{region}: {refused:.0f} refusals, {alarm['AlarmName']} breached")
    return "; ".join(seen)


def breaching_periods(client: Callable[[str, str], Any], region: str, alarm: Mapping[str, Any]) -> list[float]:
    """The values of the alarm's statistic, over the last hour, for the periods that breach it
    (EMULATED: moto stores metrics but evaluates no alarm)."""
    now = datetime.now(UTC)
    period = int(alarm["Period"])
    stats = client("cloudwatch", region).get_metric_statistics(
        Namespace=alarm["Namespace"],
        MetricName=alarm["MetricName"],
        Dimensions=alarm.get("Dimensions", []),
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(seconds=period),
        Period=period,
        Statistics=[alarm["Statistic"]],
    )["Datapoints"]
    threshold, operator = float(alarm["Threshold"]), alarm["ComparisonOperator"]
    breach = {
        "GreaterThanOrEqualToThreshold": lambda v: v >= threshold,
        "GreaterThanThreshold": lambda v: v > threshold,
        "LessThanThreshold": lambda v: v < threshold,
        "LessThanOrEqualToThreshold": lambda v: v <= threshold,
    }[operator]
    return [p[alarm["Statistic"]] for p in stats if breach(p[alarm["Statistic"]])]
