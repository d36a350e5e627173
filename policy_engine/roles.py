"""The toolkit's role naming, shared by the tools that classify roles."""

from __future__ import annotations

from typing import Any


def role_kind(path: Any, construct_path: str) -> str | None:
    """'reader', 'writer' or None: the IAM path's last segment, else a ``Reader``/``Writer``
    construct in the construct path."""
    if isinstance(path, str):
        segments = [s for s in path.split("/") if s]
        if segments and segments[-1].lower() in ("reader", "writer"):
            return segments[-1].lower()
    for segment in reversed(construct_path.split("/")):
        if segment.lower() in ("reader", "writer"):
            return segment.lower()
    return None
