"""The toolkit's role naming, shared by the tools that classify roles."""

from __future__ import annotations

from typing import Any


def role_kind(path: Any, construct_path: str) -> str | None:
    """'reader', 'writer' or None: the IAM path's last ``reader``/``writer`` segment (a role under a
    reader's path, e.g. the finder's ``/<prefix>/reader/finder/``, is a reader: nothing under that path
    may create ciphertext), else a ``Reader``/``Writer`` construct in the construct path."""
    if isinstance(path, str):
        for segment in reversed([s for s in path.split("/") if s]):
            if segment.lower() in ("reader", "writer"):
                return segment.lower()
    for segment in reversed(construct_path.split("/")):
        if segment.lower() in ("reader", "writer"):
            return segment.lower()
    return None
