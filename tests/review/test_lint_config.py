"""The template linters' configuration: pinned, separate, and every ignored cfn-lint rule has a reason."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_ignored_cfn_lint_rule_has_a_reason() -> None:
    lines = (REPO / ".cfnlintrc").read_text().splitlines()
    ignored = [i for i, line in enumerate(lines) if re.match(r"^\s*-\s*[EWI]\d{4}\s*$", line)]
    assert ignored, "no rule ignored: drop this test's expectation or the file"
    for index in ignored:
        assert lines[index - 1].strip().startswith("#"), f"{lines[index].strip()}: give the reason in a comment above"


def test_linters_are_pinned_and_not_in_the_app_venv_requirements() -> None:
    pins = [line for line in (REPO / "requirements-review.txt").read_text().splitlines() if line and line[0] != "#"]
    assert sorted(p.split("==")[0] for p in pins) == ["cfn-lint", "checkov"]
    assert all("==" in p for p in pins)
    app = (REPO / "requirements.txt").read_text() + (REPO / "requirements-dev.txt").read_text()
    assert "checkov" not in app
