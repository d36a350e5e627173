"""Synthesize the app in-process, beside ``build_stacks``: the one way the tools (the emulator's
main job, the review, the tests) turn cdk.json's deployment plus ``-c`` overrides into a cloud
assembly without the CDK CLI. Bundling is skipped: the emulator runs lambda_src directly, and
bundling only shapes the deployable zip."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from stacks.config import cdk_json_context, load_config

_SYNTHESIZED: dict[str, Path] = {}  # context -> assembly synthesized into a temp dir by this process


@atexit.register
def _remove_temp_assemblies() -> None:
    """The temp dirs this process synthesized into go with it (a run leaves nothing in /tmp)."""
    for path in _SYNTHESIZED.values():
        shutil.rmtree(path, ignore_errors=True)


def synthesize(context_overrides: dict[str, Any], outdir: str | None = None) -> Path:
    """The assembly directory of cdk.json's context plus ``context_overrides``. Into a temp dir
    (no ``outdir``), the same context is synthesized once per process (synth is deterministic), and
    the dir is removed when the process exits."""
    # Imported here, not at the top: jsii starts Node.js (about 2 s), which a tool given an
    # assembly already synthesized (--cdk-out) never needs.
    import aws_cdk as cdk

    from stacks.app_builder import add_compliance_checks, build_stacks

    context = {**cdk_json_context(), **context_overrides}
    key = json.dumps(context, sort_keys=True, default=str)
    if outdir is None and key in _SYNTHESIZED and (_SYNTHESIZED[key] / "manifest.json").is_file():
        return _SYNTHESIZED[key]
    out = outdir or tempfile.mkdtemp(prefix="mrk-toolkit-cdk-out-")
    app = cdk.App(context=context, outdir=out, post_cli_context={"aws:cdk:bundling-stacks": []})
    config = load_config(app.node.get_all_context())
    build_stacks(app, config)
    add_compliance_checks(app, config)
    app.synth()
    if outdir is None:
        _SYNTHESIZED[key] = Path(out)
    return Path(out)
