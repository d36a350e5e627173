"""Writer function: encrypt a record's sensitive fields with the local MRK, write the local replica.

Event: ``{"id": "<item id>", "record": {<field>: <JSON value>, ...}}``.
Result: ``{"ok": true, "id", "region", "encrypted_fields", "ciphertext_bytes"}`` or
``{"ok": false, "error": {"type", "status", "retryable", "message"}}``.
"""

from record_crypto.service import RecordService

# Cold start: validate the environment contract and build the KMS and DynamoDB clients once.
SERVICE = RecordService.from_environment()


def handler(event, context):
    return SERVICE.write(event)
