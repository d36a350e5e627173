"""One synthesized default assembly for every end-to-end test of this worker (synth costs ~5 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.synthesize import synthesize


@pytest.fixture(scope="session")
def default_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize({}, str(tmp_path_factory.mktemp("cdk-out-default")))
