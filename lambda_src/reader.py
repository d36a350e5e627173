"""Reader function: read an item from the local replica, decrypt it with the local MRK replica.

Event: ``{"id": "<item id>"}``.
Result: ``{"ok": true, "id", "record", "written_region", "read_region", "written_at"}`` or
``{"ok": false, "error": {"type", "status", "retryable", "message"}}`` (``NotFound`` is
retryable: the item may not have replicated to this region yet).
"""

from record_crypto.service import RecordService

# Cold start: validate the environment contract and build the KMS and DynamoDB clients once.
SERVICE = RecordService.from_environment()


def handler(event, context):
    return SERVICE.read(event)
