"""The alarms of each region, as the review lists them: name, metric, threshold, action; and the audit
rules (EventBridge, on the region's CloudTrail events): what each watches and whom it notifies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloud_assembly.audit_events import STATE_ALL_MANAGEMENT_EVENTS
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


def _pattern_text(pattern: Mapping[str, Any], inventory: Inventory, region: str) -> str:
    """What a CloudTrail rule's pattern selects, in a line: source, events, keys or names, who, errors."""
    if "$or" in pattern:
        return " | or | ".join(_pattern_text(p, inventory, region) for p in pattern["$or"])
    detail = pattern.get("detail") or {}
    names = detail.get("eventName") or []
    source = ", ".join(str(x) for x in pattern.get("source", []))
    shown = ", ".join(map(str, names[:4])) + (", ..." if len(names) > 4 else "")
    parts = [f"{source}: {len(names)} events ({shown})" if names else f"{source}: any event"]
    keys = (detail.get("resources") or {}).get("ARN") or []
    named = [inventory.key_for(str(k), region) for k in keys]
    on = [f"the {k.kind} {k.label}" if k else str(arn) for k, arn in zip(named, keys, strict=True)]
    if keys:
        parts.append(f"on {', '.join(on)}")
    for field, values in (detail.get("requestParameters") or {}).items():
        parts.append(f"{field} {' or '.join(map(str, values))}")
    if "$or" in detail:
        parts.append("by anyone but the function roles named in the pattern")
    if "errorCode" in detail:
        codes = [
            f"{next(iter(c))} {next(iter(c.values()))}" if isinstance(c, dict) else str(c) for c in detail["errorCode"]
        ]
        parts.append(f"errorCode {' or '.join(codes)}")
    return "; ".join(parts)


def audit_rule_entries(inventory: Inventory, region: str) -> list[dict[str, Any]]:
    """The EventBridge rules of the region (the audit alerts): what each watches, and whom it tells."""
    out = []
    for rule in inventory.view.resources("AWS::Events::Rule"):
        if rule.region != region:
            continue
        p = rule.properties
        state = str(p.get("State", "ENABLED"))
        out.append(
            {
                "name": str(p.get("Name") or rule.path),
                "watches": str(p.get("Description", "")).removeprefix("Watches "),
                "pattern": _pattern_text(p.get("EventPattern") or {}, inventory, region),
                "read_only_events": state == STATE_ALL_MANAGEMENT_EVENTS,
                "state": state,
                "targets": [_topic_text(str(t["Arn"]), inventory, region) for t in p.get("Targets", [])],
            }
        )
    return sorted(out, key=lambda r: r["name"])


def audit_rules_md(rules: list[Mapping[str, Any]]) -> list[str]:
    if not rules:
        return ["### Audit rules", "", "**No EventBridge rule in this region: no audit alert.**", ""]
    out = [
        "### Audit rules",
        "",
        "| Rule | Watches | Pattern | Read-only events | Notifies |",
        "|---|---|---|---|---|",
    ]
    for r in rules:
        targets = "; ".join(r["targets"]) or "nobody (counted by the denied-calls alarm's MatchedEvents)"
        read_only = "yes" if r["read_only_events"] else f"no ({r['state']})"
        out.append(f"| `{r['name']}` | {r['watches']} | {r['pattern']} | {read_only} | {targets} |")
    return [*out, ""]
