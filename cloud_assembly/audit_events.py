"""What the audit alerts watch, named once: CloudTrail's event names of KMS key use and of key
administration, the alert rules' names, and how an EventBridge event of a CloudTrail record looks.

The constructs build the rules from these names (cdk_constructs/audit_rules.py); the emulator
matches its CloudTrail records against the deployed rules; ``python -m offline audit`` sorts what
the trail holds with the same lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KMS_EVENT_SOURCE = "kms.amazonaws.com"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
# A rule receives read-only management events (KMS Decrypt, GenerateDataKey...) only in this state.
STATE_ALL_MANAGEMENT_EVENTS = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"

# CloudTrail's eventName of each cryptographic use of a key (ReEncryptFrom/To are one "ReEncrypt").
KEY_USE_EVENTS = (
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "ReEncrypt",
    "GenerateMac",
    "VerifyMac",
    "Sign",
    "Verify",
    "DeriveSharedSecret",
)
# The use each function role makes of its region's records key; any other use by anyone is unexpected.
READER_USE = "Decrypt"
WRITER_USE = "GenerateDataKey"
# Every change to a key's administration: policy, grants, state, deletion, replication, tags, aliases.
KEY_ADMIN_EVENTS = (
    "PutKeyPolicy",
    "CreateGrant",
    "RetireGrant",
    "RevokeGrant",
    "DisableKey",
    "EnableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "UpdatePrimaryRegion",
    "ReplicateKey",
    "TagResource",
    "UntagResource",
    "CreateAlias",
    "DeleteAlias",
    "UpdateAlias",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "RotateKeyOnDemand",
    "UpdateKeyDescription",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
)
DENIED_ERROR_PREFIX = "AccessDenied"

# The rules of each region (name: <prefix>-<region>-<what>) and what each watches.
RULE_KEY_ADMINISTRATION = "key-administration"
RULE_UNEXPECTED_KEY_USE = "unexpected-key-use"
RULE_DENIED_KEY_CALLS = "denied-key-calls"
RULE_WATCHES = {
    RULE_KEY_ADMINISTRATION: "any change to the administration of the region's toolkit keys: records, table "
    "(or storage and secrets), logs, alarm topic (policy, grants, state, deletion, primary region, replication, "
    "tags, aliases, rotation)",
    RULE_UNEXPECTED_KEY_USE: f"any use of the region's records key other than {WRITER_USE} by the region's writer "
    f"role and {READER_USE} by its reader role (allowed or denied)",
    RULE_DENIED_KEY_CALLS: "every denied call on the region's records key (counted by the denied-calls alarm)",
}
# With tenants, what the rules watch (RULE_WATCHES is the deployment without them).
TENANT_RULE_WATCHES = {
    RULE_KEY_ADMINISTRATION: RULE_WATCHES[RULE_KEY_ADMINISTRATION].replace(
        "keys: records,", "keys: records, tenants',"
    ),
    RULE_UNEXPECTED_KEY_USE: f"{RULE_WATCHES[RULE_UNEXPECTED_KEY_USE]}; and any use of the region's tenant keys other "
    f"than {WRITER_USE} in a session of the writer's tenant-access role and {READER_USE} in one of the reader's",
    RULE_DENIED_KEY_CALLS: "every denied call on the region's records key and tenant keys (counted by the denied-calls "
    "alarm)",
}
# The audit trail's own changes (in the trail's home region): logging stopped, the trail deleted or
# changed, its bucket's protections changed, its key administered.
RULE_TRAIL_CHANGES = "audit-trail-changes"
TRAIL_EVENTS = ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "PutInsightSelectors")
TRAIL_BUCKET_EVENTS = (
    *("PutBucketPolicy", "DeleteBucketPolicy", "DeleteBucket", "PutBucketLifecycle", "DeleteBucketLifecycle"),
    *("PutBucketVersioning", "PutBucketEncryption", "DeleteBucketEncryption", "PutBucketPublicAccessBlock"),
    *("DeleteBucketPublicAccessBlock", "PutBucketOwnershipControls", "PutBucketAcl"),
)
RULE_WATCHES[RULE_TRAIL_CHANGES] = (
    "the audit trail's own changes: logging stopped, the trail deleted or changed, its bucket's policy, "
    "lifecycle, versioning, encryption or public access block changed, its key administered"
)
# A burst of denials: the denied-calls alarm fires at this many matches of the rule in 5 minutes.
DENIED_BURST_CALLS = 5
DENIED_BURST_PERIOD_SECONDS = 300


def rule_name(prefix: str, region: str, what: str) -> str:
    return f"{prefix}-{region}-{what}"


def eventbridge_event(record: Mapping[str, Any], account: str) -> dict[str, Any]:
    """The EventBridge event of one CloudTrail record ("AWS API Call via CloudTrail")."""
    service = str(record["eventSource"]).split(".", 1)[0]
    return {
        "version": "0",
        "id": record["eventID"],
        "detail-type": CLOUDTRAIL_DETAIL_TYPE,
        "source": f"aws.{service}",
        "account": account,
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": dict(record),
    }
