"""Finder function: find records by a sensitive field's value in this region, without decrypting the table.

Event: ``{"field": "<a beacon field>", "value": "<the value>"}`` (and ``"tenant"`` in a deployment with
tenants). Result: ``{"ok": true, "field", "matches": [{"id", "record", "version"}], "candidates", "complete",
"region"}``: the records whose field holds the value (normalized as the field's beacon is), each authenticated
whole; ``candidates`` counts the records the beacon matched (the false positives were decrypted and dropped);
``complete`` is false until the backfill of the field has finished in this region (records written before the
field had a beacon may be missing; README "Adding a beacon field").
Or ``{"ok": false, "error": {...}}``: ``InvalidEvent`` (400) for a field that has no beacon,
``TooManyCandidates`` (422) when the beacon matches more than MAX_CANDIDATES records, ``TamperedRecord``
(422) when a candidate's beacon or any attribute was changed or planted, ``IndexNotReady`` (503, retryable)
while the field's index (or Aurora column) is still being built.
"""

from record_crypto.service import RecordService

# Cold start: validate the environment contract and build the KMS and DynamoDB clients once.
SERVICE = RecordService.from_environment()


def handler(event, context):
    return SERVICE.find(event)
