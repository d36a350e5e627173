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
    type, status = "TamperedCiphertext", 422


class ContextMismatch(RecordError):
    """The ciphertext is intact but bound to another table, item or schema."""

    type, status = "ContextMismatch", 422


class UnexpectedAlgorithm(RecordError):
    """An unsigned message where the configuration requires signed ones (a possible forgery)."""

    type, status = "UnexpectedAlgorithm", 422


class WrongKey(RecordError):
    """The ciphertext was not made with this deployment's multi-region key."""

    type, status = "WrongKey", 403


class AccessDenied(RecordError):
    type, status = "AccessDenied", 403


class KmsThrottled(RecordError):
    type, status, retryable = "KmsThrottled", 503, True


class TableThrottled(RecordError):
    type, status, retryable = "TableThrottled", 503, True


class Internal(RecordError):
    type, status = "Internal", 500


ERROR_TYPES: dict[str, type[RecordError]] = {
    cls.type: cls
    for cls in (
        InvalidEvent,
        RecordTooLarge,
        NotFound,
        TamperedCiphertext,
        ContextMismatch,
        UnexpectedAlgorithm,
        WrongKey,
        AccessDenied,
        KmsThrottled,
        TableThrottled,
        Internal,
    )
}
