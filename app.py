#!/usr/bin/env python3
"""CDK app: one validated config from cdk.json context, the stacks, and cdk-nag."""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk

from stacks.app_builder import add_compliance_checks, build_stacks
from stacks.config import ConfigError, load_config


def main() -> None:
    app = cdk.App()
    try:
        config = load_config(app.node.get_all_context(), os.environ.get("CDK_DEFAULT_ACCOUNT"))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    build_stacks(app, config)
    add_compliance_checks(app)
    app.synth()


if __name__ == "__main__":
    main()
