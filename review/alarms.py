"""The alarms of each region, as the review lists them: name, metric, threshold, action."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from review.inventory import Inventory

OPERATORS = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


def _dimension_text(value: Any, inventory: Inventory) -> str:
    for fn in inventory.functions:
        if value in (inventory.view.physical(fn.resource.stack, fn.resource.logical_id, "Ref"), fn.resource.path):
            return fn.label
    return str(value)


def _topic_text(arn: str, inventory: Inventory, region: str) -> str:
    for topic in inventory.view.resources("AWS::SNS::Topic"):
        if inventory.view.physical(topic.stack, topic.logical_id, "Ref") != arn:
            continue
        key = inventory.key_for(str(topic.properties.get("KmsMasterKeyId") or ""), region)
        encrypted = f"encrypted with the {key.kind} {key.label}" if key else "**not encrypted**"
        return f"SNS topic {arn.rsplit(':', 1)[-1]} ({topic.region}, {encrypted})"
    return f"{arn} (not in the assembly)"


def alarm_entries(inventory: Inventory, region: str) -> list[dict[str, Any]]:
    out = []
    for alarm in inventory.view.resources("AWS::CloudWatch::Alarm"):
        if alarm.region != region:
            continue
        p = alarm.properties
        dims = ", ".join(f"{d['Name']}={_dimension_text(d['Value'], inventory)}" for d in p.get("Dimensions", []))
        periods = f"{p.get('DatapointsToAlarm', p['EvaluationPeriods'])} of {p['EvaluationPeriods']}"
        operator = OPERATORS.get(p["ComparisonOperator"], p["ComparisonOperator"])
        out.append(
            {
                "name": str(p.get("AlarmName") or alarm.path),
                "metric": f"{p['Namespace']} {p['MetricName']}" + (f" ({dims})" if dims else ""),
                "threshold": (
                    f"{p.get('Statistic', p.get('ExtendedStatistic'))} {operator} "
                    f"{float(p['Threshold']):g} in {periods} periods of {int(p['Period'])} s; missing data "
                    f"{p.get('TreatMissingData', 'missing')}"
                ),
                "actions": [_topic_text(str(a), inventory, region) for a in p.get("AlarmActions", [])],
            }
        )
    return sorted(out, key=lambda a: a["name"])


def alarms_md(alarms: list[Mapping[str, Any]]) -> list[str]:
    if not alarms:
        return ["### Alarms", "", "**No alarm in this region.**", ""]
    out = ["### Alarms", "", "| Alarm | Metric | Fires when | Notifies |", "|---|---|---|---|"]
    for a in alarms:
        actions = "; ".join(a["actions"]) or "**nobody**"
        out.append(f"| `{a['name']}` | {a['metric']} | {a['threshold']} | {actions} |")
    return [*out, ""]
