"""The error contract: every failure a caller can see, with a type, a status and retryability.

Messages are written for the caller and never contain record values, key material or the
ciphertext: they say what was wrong and what to do.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RecordError(Exception):
    """Base of the structured errors the handlers return as ``{"ok": false, "error": ...}``."""

    type: ClassVar[str] = "Internal"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    # A refusal that means someone altered a record or used a wrong key: one is already worth an
    # alarm (the functions count these as SecurityRefusals, see observability.py).
    security_signal: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_result(self) -> dict[str, Any]:
        return {
            "ok": False,
            "error": {
                "type": self.type,
                "status": self.status,
                "retryable": self.retryable,
                "message": self.message,
            },
        }


class InvalidEvent(RecordError):
    type, status = "InvalidEvent", 400


class RecordTooLarge(RecordError):
    type, status = "RecordTooLarge", 413


class NotFound(RecordError):
    """The item is not in this region's replica (yet): global tables replicate asynchronously."""

    type, status, retryable = "NotFound", 404, True


class TamperedCiphertext(RecordError):
    type, status, security_signal = "TamperedCiphertext", 422, True


class TamperedRecord(RecordError):
    """The ciphertext is authentic but the item around it is not what the writer stored.

    A plaintext attribute was changed, added or removed, or an attribute named like a sensitive
    field was planted in plaintext.
    """

    type, status, security_signal = "TamperedRecord", 422, True


class VersionConflict(RecordError):
    """The item changed between reading its version and writing the next one.

    Retryable when the writer chose the version itself (it re-reads); not when the caller's
    ``expected_version`` is no longer current (read the record again first).
    """

    type, status = "VersionConflict", 409

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable  # type: ignore[misc]


class StaleRecord(RecordError):
    """The replica holds an older version than the caller's ``min_version`` (replication may
    still bring the newer one; or an older copy was restored over it)."""

    type, status, retryable = "StaleRecord", 412, True


class ContextMismatch(RecordError):
    """The ciphertext is intact but bound to another table, item or schema."""

    type, status, security_signal = "ContextMismatch", 422, True


class UnexpectedAlgorithm(RecordError):
    """An unsigned message where the configuration requires signed ones (a possible forgery)."""

    type, status, security_signal = "UnexpectedAlgorithm", 422, True


class WrongKey(RecordError):
    """The ciphertext was not made with this deployment's multi-region key."""

    type, status, security_signal = "WrongKey", 403, True


class AccessDenied(RecordError):
    type, status = "AccessDenied", 403


class DeploymentNotDiscovered(RecordError):
    """A deployment's discovery parameters (README "Discovery") are missing, incomplete, not readable with
    the caller's credentials, or malformed; the message names the path and the fix."""

    type, status = "DeploymentNotDiscovered", 404


class KeyDisabled(RecordError):
    """KMS refuses the key as disabled or scheduled for deletion (e.g. an erased tenant's key):
    not retryable; within the waiting period, cancelling the deletion restores it."""

    type, status = "KeyDisabled", 403


class KmsThrottled(RecordError):
    type, status, retryable = "KmsThrottled", 503, True


class TableThrottled(RecordError):
    type, status, retryable = "TableThrottled", 503, True


class Unavailable(RecordError):
    """KMS or DynamoDB of this region did not answer (5xx, refused connection, timeout) after the
    SDK's retries, e.g. during a regional outage. Nothing was stored by this call."""

    type, status, retryable = "Unavailable", 503, True


class ReadOnlyRegion(RecordError):
    """A write reached a read-only cluster of the Aurora global database (one a switchover or failover
    is demoting or promoting): nothing was written. Retryable: once the promotion is done the global
    writer endpoint names the new primary's writer."""

    type, status, retryable = "ReadOnlyRegion", 421, True


class DatabaseUnavailable(RecordError):
    """The local cluster cannot be reached or is changing roles (e.g. during a failover)."""

    type, status, retryable = "DatabaseUnavailable", 503, True


class UnknownTenant(RecordError):
    """The event names a tenant this deployment does not have (refused before any KMS or database call)."""

    type, status = "UnknownTenant", 400


class TenantNotInRegion(RecordError):
    """The tenant's key does not exist in this region: its records may not be decrypted (or written)
    here, by the tenant's residency settings. Not retryable: call a region of the tenant."""

    type, status = "TenantNotInRegion", 403


class TenantMismatch(RecordError):
    """The stored record belongs to another tenant than the one the caller asked for (refused
    before any KMS call): a caller bug, or someone probing across tenants."""

    type, status, security_signal = "TenantMismatch", 403, True


class TooManyCandidates(RecordError):
    """A lookup whose beacon matches more stored records than the finder decrypts (MAX_CANDIDATES): a
    beacon of few bits, or a very common value. Not retryable: the answer would be the same."""

    type, status = "TooManyCandidates", 422


class IndexNotReady(RecordError):
    """A beacon field added to a running deployment whose index is still being built: DynamoDB refuses a
    Query of a global secondary index while it backfills it (ValidationException), and the Aurora store's
    column is not there until the stack update's schema setup has added it. Retryable: the same lookup
    answers once the index is active. Never an empty answer a caller could take for "no match"."""

    type, status, retryable = "IndexNotReady", 503, True


class Internal(RecordError):
    type, status = "Internal", 500


ERROR_TYPES: dict[str, type[RecordError]] = {
    cls.type: cls
    for cls in (
        InvalidEvent,
        RecordTooLarge,
        NotFound,
        TamperedCiphertext,
        TamperedRecord,
        VersionConflict,
        StaleRecord,
        ContextMismatch,
        UnexpectedAlgorithm,
        WrongKey,
        AccessDenied,
        DeploymentNotDiscovered,
        KeyDisabled,
        KmsThrottled,
        TableThrottled,
        Unavailable,
        ReadOnlyRegion,
        DatabaseUnavailable,
        UnknownTenant,
        TenantNotInRegion,
        TenantMismatch,
        TooManyCandidates,
        IndexNotReady,
        Internal,
    )
}
