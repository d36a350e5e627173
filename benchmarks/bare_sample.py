"""The reference for the cold-start benchmark: the same work as the writer and reader functions,
done the way the AWS Encryption SDK's own samples do it, with no toolkit: boto3 and the Encryption SDK,
the MRK-aware strict master key provider, a committing policy, one DynamoDB client, all built at cold
start. It is copied beside its dependencies (source only, as ``pip install -t`` leaves them once
``__pycache__`` is stripped) and run in a fresh interpreter; see coldstart.py.

Not imported by the benchmarks themselves (it needs the function environment at import).
"""

import json
import os

import aws_encryption_sdk
import boto3
from aws_encryption_sdk.identifiers import CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import MRKAwareStrictAwsKmsMasterKeyProvider

TABLE = os.environ["RECORDS_TABLE_NAME"]
SENSITIVE = tuple(os.environ["SENSITIVE_FIELDS"].split(","))
CLIENT = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
PROVIDER = MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[os.environ["RECORDS_MRK_ARN"]])
DYNAMODB = boto3.client("dynamodb")


def write(event, context):
    record = event["record"]
    secret = {name: value for name, value in record.items() if name in SENSITIVE}
    ciphertext, _ = CLIENT.encrypt(
        source=json.dumps(secret).encode(),
        key_provider=PROVIDER,
        encryption_context={"table": TABLE, "id": event["id"]},
    )
    item = {name: {"S": json.dumps(value)} for name, value in record.items() if name not in SENSITIVE}
    item |= {"id": {"S": event["id"]}, "ciphertext": {"B": ciphertext}}
    DYNAMODB.put_item(TableName=TABLE, Item=item)
    return {"ok": True, "id": event["id"], "ciphertext_bytes": len(ciphertext)}


def read(event, context):
    item = DYNAMODB.get_item(TableName=TABLE, Key={"id": {"S": event["id"]}}, ConsistentRead=True)["Item"]
    plaintext, header = CLIENT.decrypt(source=item.pop("ciphertext")["B"], key_provider=PROVIDER)
    if header.encryption_context.get("id") != event["id"] or header.encryption_context.get("table") != TABLE:
        return {"ok": False, "error": "encryption context mismatch"}
    record = {name: json.loads(value["S"]) for name, value in item.items() if name != "id"}
    return {"ok": True, "id": event["id"], "record": record | json.loads(plaintext)}
