"""Policy review of a synthesized assembly (GitHub issue 5).

``python -m review`` writes ``policy-review.md`` / ``policy-review.json``: every KMS key policy and
role policy per region and a "who can do what" matrix, evaluated the way AWS does for one account.
``python -m review readme README.md`` keeps the README's architecture diagram generated.
``python -m review.lint`` runs cfn-lint and checkov on the templates (in ``.venv-review``).

Reads templates only: no CDK import unless it has to synthesize.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloud_assembly.reader import CloudAssembly

__all__ = ["build_review", "mermaid"]


def mermaid(assembly: CloudAssembly) -> str:
    """The architecture diagram (Mermaid ``flowchart`` source, no fences) of an assembly."""
    from review.diagram import mermaid as _mermaid

    return _mermaid(assembly)


def build_review(assembly: CloudAssembly) -> dict[str, Any]:
    from review.report import build_review as _build

    return _build(assembly)
