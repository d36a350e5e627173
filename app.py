#!/usr/bin/env python3
"""CDK app: one validated config from cdk.json context, the stacks, and cdk-nag."""

from __future__ import annotations

import os
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv"


def _cdk_importable() -> bool:
    """`npx cdk ...` runs cdk.json's `python3 app.py` with the first python3 on PATH. Without .venv
    activated that interpreter lacks aws_cdk: re-run this app under the project's .venv, or say
    in one line how to get one."""
    try:
        import aws_cdk  # noqa: F401
    except ModuleNotFoundError:
        venv_python = VENV / "bin" / "python"
        if venv_python.exists() and Path(sys.prefix).resolve() != VENV.resolve():
            os.execv(venv_python, [str(venv_python), *sys.argv])  # noqa: S606
        print(
            f"error: aws_cdk is not installed for {sys.executable}: run `make setup` (creates .venv, which "
            "`npx cdk` then uses), or activate the virtualenv that has requirements.txt installed",
            file=sys.stderr,
        )
        return False
    return True


def main() -> None:
    # Before aws_cdk is imported: jsii prints Node 20's end-of-life banner as raw bytes otherwise.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    if not _cdk_importable():
        sys.exit(2)
    import aws_cdk as cdk

    from stacks.app_builder import add_compliance_checks, build_stacks
    from stacks.config import ConfigError, load_config

    app = cdk.App()
    try:
        config = load_config(app.node.get_all_context(), os.environ.get("CDK_DEFAULT_ACCOUNT"))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    build_stacks(app, config)
    add_compliance_checks(app, config)
    app.synth()


if __name__ == "__main__":
    main()
