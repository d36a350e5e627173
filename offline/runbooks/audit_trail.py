"""`python -m offline audit`: who used which toolkit key, where, for which record; the denials; the
changes to the keys' administration. Read from each region's CloudTrail event history
(``LookupEvents``: 90 days of management events, no trail needed) with the same code against
`python -m offline up` (AWS_ENDPOINT_URL) and a real account.

The toolkit's keys are each region's records key (the keys stack's output). A use names its record
when the encryption context holds it (data-key cache off: ``item``); with the cache on, one data key
serves many records, so the trail says who used the key, where and when, but not for which record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cloud_assembly.audit_events import KEY_ADMIN_EVENTS, KEY_USE_EVENTS
from lambda_src.record_crypto.settings import ITEM_CONTEXT_KEY
from offline.runbooks.rotation import primary_key_arn

CloudTrailRecord = dict[str, Any]
NO_RECORD = "(not in context)"


def trail_records(
    cloudtrail: Any, value: str, since: datetime | None = None, *, attribute: str = "EventName"
) -> Iterator[CloudTrailRecord]:
    """The region's CloudTrail records whose ``attribute`` (EventName, ResourceName...) is ``value``,
    newest first (LookupEvents, every page)."""
    kwargs: dict[str, Any] = {"LookupAttributes": [{"AttributeKey": attribute, "AttributeValue": value}]}
    if since is not None:
        kwargs["StartTime"] = since
    for page in cloudtrail.get_paginator("lookup_events").paginate(**kwargs):
        for event in page["Events"]:
            yield json.loads(event["CloudTrailEvent"])


def _key_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def on_key(record: Mapping[str, Any], key_arn: str) -> bool:
    """Is the record about this key (its ARN, or the same key id in the record's own region)?"""
    region = record.get("awsRegion")
    for found in (str(r.get("ARN", "")) for r in record.get("resources") or []):
        if found == key_arn or (_key_id(found) == _key_id(key_arn) and found.split(":")[3:4] == [region]):
            return True
    return False


def issuer(record: Mapping[str, Any]) -> str:
    """The role a session belongs to, or the caller's own ARN (the root, a user)."""
    identity = record.get("userIdentity") or {}
    session = identity.get("sessionContext") or {}
    return str(session.get("sessionIssuer", {}).get("arn") or identity.get("arn", ""))


def encryption_context(record: Mapping[str, Any]) -> dict[str, str]:
    return dict((record.get("requestParameters") or {}).get("encryptionContext") or {})


@dataclass(frozen=True)
class AuditRow:
    time: str
    region: str
    kind: str  # "use" or "administration"
    event: str
    principal: str  # a role's ARN (not its session), the root, a user
    role: str  # "writer", "reader" or "other" (from the role path /<prefix>/<kind>/)
    record: str  # the record the context names, NO_RECORD, or "" for administration
    outcome: str  # "ok" or the error code


def role_kind(principal: str, stack_prefix: str) -> str:
    for kind in ("writer", "reader"):
        if f":role/{stack_prefix}/{kind}/" in principal:
            return kind
    return "other"


def row(record: Mapping[str, Any], stack_prefix: str) -> AuditRow:
    use = record["eventName"] in KEY_USE_EVENTS
    principal = issuer(record)
    return AuditRow(
        time=str(record["eventTime"]),
        region=str(record["awsRegion"]),
        kind="use" if use else "administration",
        event=str(record["eventName"]),
        principal=principal,
        role=role_kind(principal, stack_prefix),
        record=encryption_context(record).get(ITEM_CONTEXT_KEY, NO_RECORD) if use else "",
        outcome=str(record.get("errorCode") or "ok"),
    )


def region_rows(cloudtrail: Any, key_arn: str, stack_prefix: str, since: datetime | None = None) -> list[AuditRow]:
    """Every use and administration event of ``key_arn`` in one region (one lookup by the key:
    LookupEvents answers 2 requests per second per account and region)."""
    names = {*KEY_USE_EVENTS, *KEY_ADMIN_EVENTS}
    found = trail_records(cloudtrail, key_arn, since, attribute="ResourceName")
    return [row(r, stack_prefix) for r in found if r["eventName"] in names and on_key(r, key_arn)]


def collect(
    client: Callable[[str, str], Any],
    regions: Iterable[str],
    stack_prefix: str,
    *,
    since: datetime | None = None,
    record: str | None = None,
) -> list[AuditRow]:
    """The rows of every region, oldest first; ``record``: only the uses naming it."""
    rows: list[AuditRow] = []
    for region in regions:
        key = primary_key_arn(client("cloudformation", region), stack_prefix, region)
        rows += region_rows(client("cloudtrail", region), key, stack_prefix, since)
    if record is not None:
        rows = [r for r in rows if r.record == record]
    return sorted(rows, key=lambda r: (r.time, r.region, r.event))


def summary(rows: list[AuditRow], record: str | None) -> list[str]:
    """What the rows say, and what they cannot."""
    uses = [r for r in rows if r.kind == "use"]
    denied = [r for r in rows if r.outcome != "ok"]
    unexpected = [r for r in uses if (r.role, r.event) not in (("writer", "GenerateDataKey"), ("reader", "Decrypt"))]
    lines = [
        f"{len(uses)} uses of the records keys, {len(rows) - len(uses)} administration events, {len(denied)} denied",
        f"{len(unexpected)} uses by anyone but the region's writer (GenerateDataKey) and reader (Decrypt)",
    ]
    unnamed = [r for r in uses if r.record == NO_RECORD]
    if unnamed:
        lines.append(
            f"{len(unnamed)} uses name no record: with the data-key cache on, one data key serves many records "
            "(who, where and when are known, not which record)"
        )
    if record is not None and not rows:
        lines.append(f"no use names {record}: none in the window, or the data-key cache was on when it was read")
    return lines


def render_table(rows: list[AuditRow], record: str | None = None) -> str:
    header = ("time", "region", "kind", "event", "role", "principal", "record", "outcome")
    table = [header] + [
        (r.time, r.region, r.kind, r.event, r.role, r.principal.rsplit("/", 1)[-1], r.record, r.outcome) for r in rows
    ]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    body = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in table]
    return "\n".join([*body, "", *summary(rows, record)])


def render_json(rows: list[AuditRow], record: str | None = None) -> str:
    return json.dumps({"rows": [asdict(r) for r in rows], "summary": summary(rows, record)}, indent=2)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC if no zone) or a duration back from now: 30m, 12h, 7d."""
    now = now or datetime.now(UTC)
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.fromtimestamp(now.timestamp() - int(text[:-1]) * units[text[-1]], UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"--since {text!r}: give an ISO time (2026-12-01T08:00:00Z) or 30m, 12h, 7d") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
