"""EMULATION of CloudTrail's event history and of EventBridge's delivery of "AWS API Call via
CloudTrail" events, fed by the gateway (offline/emulator/gateway.py).

Every request the gateway decides becomes a record shaped like CloudTrail's (eventSource,
eventName, awsRegion, userIdentity with the role and its session, requestParameters in CloudTrail's
lower-camel-case with the KMS encryption context and without ciphertext or plaintext, resources,
errorCode/errorMessage for a refusal, readOnly, eventCategory, eventTime, requestID, eventID), kept
per account and region (the region of the call, as on AWS) and served through
``cloudtrail:LookupEvents`` (management events only, newest first, one lookup attribute, 50 per page).

Each management record is then matched, in its own region, against the EventBridge rules deployed
there (read live from moto's events backend) with moto's own implementation of EventBridge's pattern
language (``moto.events.models.EventPattern``): read-only events reach only rules in the state
``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS``, as on AWS. A match counts in the rule's
``AWS/Events`` ``MatchedEvents`` metric and is delivered to each SNS target if the topic's policy and
its key's policy let EventBridge publish for that rule (decided by ``policy_engine``); every
delivery, made or refused, is kept in ``deliveries``.

Not emulated: S3 requests (REST, no operation name: S3 object requests are data events anyway), STS
(AssumeRole is answered before the decision the trail records), the emulator's own served APIs
(CloudFormation reads, Lambda Invoke: a data event), a trail's log files and digests, and the
delay (records are there at once; on AWS, minutes for the log files, seconds for EventBridge).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cloud_assembly.audit_events import KEY_USE_EVENTS, STATE_ALL_MANAGEMENT_EVENTS, eventbridge_event
from policy_engine import Caller, Request, authorize

KEPT_PER_REGION = 20_000
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Lookup", "BatchGet", "Query", "Scan")
# DynamoDB item requests are data events: a trail of management events does not record them.
DATA_EVENTS = {
    "dynamodb": {
        *("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"),
        *("BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems"),
    },
}
# Never in a CloudTrail record: the secrets and the bytes (CloudTrail omits them).
OMITTED_PARAMETERS = {"CiphertextBlob", "Plaintext", "SecretString", "SecretBinary", "Message"}
LOOKUP_ATTRIBUTES = {
    "EventId": lambda r: [r["eventID"]],
    "EventName": lambda r: [r["eventName"]],
    "EventSource": lambda r: [r["eventSource"]],
    "ReadOnly": lambda r: [str(r["readOnly"]).lower()],
    "Username": lambda r: [_username(r)],
    "AccessKeyId": lambda r: [r["userIdentity"].get("accessKeyId", "")],
    "ResourceName": lambda r: [x["ARN"] for x in r.get("resources", [])],
    "ResourceType": lambda r: [x["type"] for x in r.get("resources", [])],
}


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def request_parameters(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request as CloudTrail writes it: top-level names in lower camel case, maps kept as they
    are (the encryption context's keys are the caller's), secrets and bytes left out."""
    out = {_lower_camel(k): v for k, v in params.items() if k not in OMITTED_PARAMETERS}
    return out or None


def user_identity(account: str, arn: str, admin: bool, session_arn: str | None, access_key: str) -> dict[str, Any]:
    """The caller as CloudTrail names it: the account root, an IAM user, or a role session and its issuer."""
    if ":user/" in arn:
        user_id = "AIDA" + uuid.uuid5(uuid.NAMESPACE_URL, arn).hex[:17].upper()
        name = arn.rsplit("/", 1)[-1]
        return {
            "type": "IAMUser",
            "principalId": user_id,
            "arn": arn,
            "accountId": account,
            "accessKeyId": access_key,
            "userName": name,
        }
    if admin:
        return {"type": "Root", "principalId": account, "arn": arn, "accountId": account, "accessKeyId": access_key}
    role_name = arn.rsplit("/", 1)[-1]
    session = session_arn or f"arn:aws:sts::{account}:assumed-role/{role_name}/emulated"
    session_name = session.rsplit("/", 1)[-1]
    role_id = "AROA" + uuid.uuid5(uuid.NAMESPACE_URL, arn).hex[:17].upper()
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session_name}",
        "arn": session,
        "accountId": account,
        "accessKeyId": access_key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": arn,
                "accountId": account,
                "userName": role_name,
            },
            "attributes": {"mfaAuthenticated": "false"},
        },
    }


def _username(record: Mapping[str, Any]) -> str:
    identity = record["userIdentity"]
    return "root" if identity["type"] == "Root" else str(identity["arn"]).rsplit("/", 1)[-1]


def read_only(operation: str) -> bool:
    return operation.startswith(READ_ONLY_PREFIXES) or operation in KEY_USE_EVENTS


def ruler_view(node: Any) -> Any:
    """EMULATION of how EventBridge matches fields inside arrays of objects (``detail.resources.ARN``
    matches any element's ARN): moto's matcher flattens objects only, so an array of objects is
    shown to it as one object of arrays. tests/offline/test_cloudtrail.py tells when moto no longer
    needs it."""
    if isinstance(node, dict):
        return {k: ruler_view(v) for k, v in node.items()}
    if isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        keys = sorted({k for x in node for k in x})
        return {k: [ruler_view(x[k]) for x in node if k in x] for k in keys}
    return node


def rule_matches(pattern: Any, event: Mapping[str, Any]) -> bool:
    """moto's EventBridge pattern matching (``pattern``: a moto EventPattern) on ``event``."""
    return bool(pattern.matches_event(ruler_view(json.loads(json.dumps(event)))))


class Trail:
    """The emulated event history of every account and region, and the EventBridge delivery."""

    def __init__(self, key_policy: Any = None) -> None:
        # key_policy(account, region, key_ref) -> (key ARN, policy document) or None: the topic keys.
        self._key_policy = key_policy
        self._records: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._delivered = 0
        self._lock = threading.Lock()

    # -- recording ---------------------------------------------------------------------------
    def record(
        self,
        *,
        identity: Mapping[str, Any],
        service: str,
        operation: str,
        params: Mapping[str, Any],
        region: str,
        resources: Iterable[tuple[str, str]] = (),
        error: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Keep one CloudTrail record (``identity``: from :func:`user_identity`; ``resources``:
        (type, ARN) pairs) and deliver it to the region's matching rules."""
        account = str(identity["accountId"])
        management = operation not in DATA_EVENTS.get(service, set())
        record: dict[str, Any] = {
            "eventVersion": "1.10",
            "userIdentity": dict(identity),
            "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": f"{service}.amazonaws.com",
            "eventName": "ReEncrypt" if operation.startswith("ReEncrypt") else operation,
            "awsRegion": region,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "emulated",
            "requestParameters": request_parameters(params),
            "responseElements": None,
            "requestID": str(uuid.uuid4()),
            "eventID": str(uuid.uuid4()),
            "readOnly": read_only(operation),
            "resources": [{"accountId": account, "type": kind, "ARN": arn} for kind, arn in resources],
            "eventType": "AwsApiCall",
            "managementEvent": management,
            "recipientAccountId": account,
            "eventCategory": "Management" if management else "Data",
        }
        if error is not None:
            record["errorCode"], record["errorMessage"] = error
        with self._lock:
            kept = self._records.setdefault((account, region), deque(maxlen=KEPT_PER_REGION))
            kept.append(record)
        if management:
            self._deliver(record, account, region)
        return record

    def records(self, account: str, region: str) -> list[dict[str, Any]]:
        """Every record of the region, oldest first (management and data events)."""
        with self._lock:
            return list(self._records.get((account, region), ()))

    # -- LookupEvents --------------------------------------------------------------------------
    def lookup_events(self, account: str, region: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """``cloudtrail:LookupEvents`` of one region: management events, newest first."""
        found = [r for r in reversed(self.records(account, region)) if r["managementEvent"]]
        for attribute in request.get("LookupAttributes") or []:
            key, value = attribute["AttributeKey"], attribute["AttributeValue"]
            if key not in LOOKUP_ATTRIBUTES:
                raise ValueError(f"LookupAttributes: {key} is not one of {', '.join(LOOKUP_ATTRIBUTES)}")
            found = [r for r in found if value in LOOKUP_ATTRIBUTES[key](r)]
        start, end = _epoch(request.get("StartTime"), float("-inf")), _epoch(request.get("EndTime"), float("inf"))
        found = [r for r in found if start <= _record_epoch(r) <= end]
        first = int(request.get("NextToken") or 0)
        size = min(int(request.get("MaxResults") or 50), 50)
        page = found[first : first + size]
        answer: dict[str, Any] = {"Events": [_lookup_event(r) for r in page]}
        if first + size < len(found):
            answer["NextToken"] = str(first + size)
        return answer

    # -- EventBridge ---------------------------------------------------------------------------
    def _deliver(self, record: dict[str, Any], account: str, region: str) -> None:
        event = eventbridge_event(record, account)
        for rule in _rules(account, region):
            if rule.state == "DISABLED" or (record["readOnly"] and rule.state != STATE_ALL_MANAGEMENT_EVENTS):
                continue
            if not rule_matches(rule.event_pattern, event):
                continue
            _count_match(account, region, rule.name)
            for target in rule.targets:
                self._to_target(account, region, rule, target, event)

    def _to_target(
        self, account: str, region: str, rule: Any, target: Mapping[str, Any], event: dict[str, Any]
    ) -> None:
        arn = str(target.get("Arn", ""))
        reason = self._publish_problem(account, region, rule.arn, arn)
        if reason is None:
            from moto.sns.models import sns_backends

            sns_backends[account][region].get_topic(arn).publish(json.dumps(event))
        with self._lock:
            self._delivered += 1
            self.deliveries.append(
                {
                    "seq": self._delivered,  # never reused: the list keeps the last 5000
                    "region": region,
                    "rule": rule.name,
                    "target": arn,
                    "eventID": event["id"],
                    "eventName": event["detail"]["eventName"],
                    "delivered": reason is None,
                    "reason": reason or "",
                }
            )
            del self.deliveries[:-5000]

    def _publish_problem(self, account: str, region: str, rule_arn: str, topic_arn: str) -> str | None:
        """Why EventBridge could not publish to the topic for this rule (topic policy, topic key)."""
        from moto.sns.models import sns_backends

        if topic_arn.split(":")[2:5] != ["sns", region, account]:
            return f"{topic_arn} is not an SNS topic of {region} (only SNS targets are emulated)"
        try:
            topic = sns_backends[account][region].get_topic(topic_arn)
        except Exception:
            return f"the topic {topic_arn} does not exist"
        caller = Caller(account, service="events.amazonaws.com")
        facts = {"aws:SourceArn": rule_arn, "aws:SourceAccount": account, "aws:SecureTransport": "true"}
        publish = authorize(
            Request(caller, "sns:Publish", topic_arn, facts), resource_policy=("topic policy", json.loads(topic.policy))
        )
        if not publish.allowed:
            return f"the topic policy does not let EventBridge publish for {rule_arn}: {publish.reason}"
        if not topic.kms_master_key_id or self._key_policy is None:
            return None
        key = self._key_policy(account, region, topic.kms_master_key_id)
        if key is None:
            return f"the topic's key {topic.kms_master_key_id} is not a key of {region}"
        context = {**facts, "kms:EncryptionContext:aws:sns:topicArn": topic_arn, "kms:CallerAccount": account}
        use = authorize(
            Request(caller, "kms:GenerateDataKey", key[0], context),
            resource_policy=("key policy", key[1]),
            resource_policy_required=True,
        )
        return None if use.allowed else f"the topic key's policy does not let EventBridge use it: {use.reason}"


def _rules(account: str, region: str) -> list[Any]:
    from moto.events.models import events_backends

    bus = events_backends[account][region].event_buses.get("default")
    return [r for r in (bus.rules.values() if bus else ()) if r.event_pattern.get_pattern()]


def _count_match(account: str, region: str, rule_name: str) -> None:
    """EventBridge's own metric of the rule (what the denied-calls alarm counts)."""
    from moto.cloudwatch.models import cloudwatch_backends

    cloudwatch_backends[account][region].put_metric_data(
        "AWS/Events",
        [
            {
                "MetricName": "MatchedEvents",
                "Dimensions": [{"Name": "RuleName", "Value": rule_name}],
                "Value": 1.0,
                "Unit": "Count",
                "Timestamp": datetime.now(UTC),
            }
        ],
    )


def _epoch(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _record_epoch(record: Mapping[str, Any]) -> float:
    return datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _lookup_event(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "ReadOnly": str(record["readOnly"]).lower(),
        "AccessKeyId": record["userIdentity"].get("accessKeyId", ""),
        "EventTime": _record_epoch(record),
        "EventSource": record["eventSource"],
        "Username": _username(record),
        "Resources": [{"ResourceType": r["type"], "ResourceName": r["ARN"]} for r in record.get("resources", [])],
        "CloudTrailEvent": json.dumps(record),
    }
