"""Template linters: cfn-lint and checkov on every ``*.template.json`` of a synthesized assembly.

  python -m review.lint [--cdk-out cdk.out]

Both run from their own virtualenv, ``.venv-review`` (created and kept in step with
requirements-review.txt here): checkov pins ``boto3==1.35.49`` and ``packaging<24``, which cannot
be installed next to the app's ``boto3==1.44.5``. Zero findings is the bar: cfn-lint rules ignored
on purpose are listed, each with its reason, in ``.cfnlintrc``; a checkov check is skipped only by
``checkov: skip`` metadata on the resource (added in CDK, with a comment). Exit 1 on any finding.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from cli_support import Parser, UsageError, add_debug, require_assembly, run
from cloud_assembly.reader import load_assembly

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "requirements-review.txt"
VENV = REPO / ".venv-review"


def ensure_venv(venv: Path = VENV) -> Path:
    """The linters' virtualenv, (re)installed when requirements-review.txt changed; its bin dir."""
    bin_dir = venv / "bin"
    stamp = venv / ".installed"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text().strip() == wanted and (bin_dir / "checkov").exists():
        return bin_dir
    if not (bin_dir / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603 - fixed argv
    print(f"installing the template linters into {venv.name} (once, ~1 min) ...", file=sys.stderr)
    subprocess.run(  # noqa: S603 - fixed argv
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    stamp.write_text(wanted + "\n")
    return bin_dir


def templates_by_region(cdk_out: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for _name, stack in sorted(load_assembly(cdk_out).stacks.items()):
        assert stack.template_file is not None  # read from the manifest
        out.setdefault(stack.region, []).append(stack.template_file)
    return out


def run_cfn_lint(bin_dir: Path, by_region: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """Findings not ignored by .cfnlintrc; each template checked against its own stack's region."""
    findings: list[dict[str, Any]] = []
    for region, templates in sorted(by_region.items()):
        result = subprocess.run(  # noqa: S603 - fixed argv
            [str(bin_dir / "cfn-lint"), "--format", "json", "--regions", region, "--", *map(str, templates)],
            cwd=REPO,  # .cfnlintrc
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 2, 4, 6, 8, 10, 12, 14):
            raise RuntimeError(f"cfn-lint failed to run (exit {result.returncode}): {result.stderr.strip()}")
        findings += json.loads(result.stdout or "[]")
    return findings


def run_checkov(bin_dir: Path, templates: list[Path]) -> dict[str, Any]:
    args = [str(bin_dir / "checkov"), "--framework", "cloudformation", "--skip-download", "-o", "json"]
    for template in templates:
        args += ["-f", str(template)]
    env = {**os.environ, "LOG_LEVEL": "ERROR"}
    result = subprocess.run(args, capture_output=True, text=True, check=False, env=env)  # noqa: S603 - fixed argv
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"checkov failed to run (exit {result.returncode}): {result.stderr.strip()[-2000:]}"
        ) from exc
    reports = report if isinstance(report, list) else [report]
    merged: dict[str, Any] = {"passed": 0, "failed_checks": [], "skipped_checks": []}
    for r in reports:
        merged["passed"] += r.get("summary", {}).get("passed", 0)
        for kind in ("failed_checks", "skipped_checks"):
            merged[kind] += r.get("results", {}).get(kind, [])
    return merged


def main(argv: list[str] | None = None) -> int:
    """The command; an expected error is one line on stderr and exit code 2."""
    return run(_main, argv)


def _linters() -> Path:
    try:
        return ensure_venv()
    except subprocess.CalledProcessError as exc:
        raise UsageError(
            f"installing the template linters into {VENV.name} failed (exit {exc.returncode}, pip's message is "
            f"above): check that PyPI is reachable, then run make lint-templates again"
        ) from exc


def _main(argv: list[str]) -> int:
    parser = Parser(prog="python -m review.lint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="synthesized assembly (default cdk.out)")
    add_debug(parser)
    args = parser.parse_args(argv)
    by_region = templates_by_region(require_assembly(args.cdk_out))
    templates = sorted(t for ts in by_region.values() for t in ts)
    if not templates:
        raise UsageError(f"no templates in {args.cdk_out}: synthesize first (make synth)")
    bin_dir = _linters()

    lint = run_cfn_lint(bin_dir, by_region)
    for f in lint:
        where = f"{Path(f['Filename']).name}:{f['Location']['Start']['LineNumber']}"
        print(f"cfn-lint {f['Rule']['Id']} ({f['Level']}) {where}: {f['Message']}")

    checkov = run_checkov(bin_dir, templates)
    for check in checkov["failed_checks"]:
        where = f"{Path(check['file_path']).name} {check['resource']}"
        print(f"checkov {check['check_id']} FAILED {where}: {check['check_name']}")
    skipped = Counter(c["check_id"] for c in checkov["skipped_checks"])
    for check in checkov["skipped_checks"]:
        comment = (check.get("check_result") or {}).get("suppress_comment", "")
        print(f"checkov {check['check_id']} skipped {Path(check['file_path']).name} {check['resource']}: {comment}")

    print(
        f"cfn-lint: {len(templates)} templates, {len(lint)} findings "
        f"({dict(sorted(Counter(f['Rule']['Id'] for f in lint).items())) or 'none'}); "
        f"checkov: {checkov['passed']} passed, {len(checkov['failed_checks'])} failed "
        f"({dict(sorted(Counter(c['check_id'] for c in checkov['failed_checks']).items())) or 'none'}), "
        f"{sum(skipped.values())} skipped in template metadata ({dict(sorted(skipped.items())) or 'none'})"
    )
    return 1 if lint or checkov["failed_checks"] else 0


if __name__ == "__main__":
    sys.exit(main())
