"""`python -m benchmarks`: only the full default run writes the committed RESULTS.md; mistakes are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.__main__ import COMMITTED, SCRATCH, _parser, output_path
from cli_support import UsageError
from tests.offline.test_cli import assert_one_line, run_cli


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], COMMITTED),
        (["--quick"], SCRATCH),
        (["--load-seconds", "3"], SCRATCH),
        (["--writers", "2"], SCRATCH),
        (["--kms-latency-ms", "0"], SCRATCH),
    ],
)
def test_only_the_full_default_run_writes_results_md(args: list[str], expected: Path) -> None:
    assert output_path(_parser().parse_args(args)) == expected


def test_a_quick_run_may_not_be_pointed_at_a_committed_file() -> None:
    for target in (str(COMMITTED), "README.md"):
        with pytest.raises(UsageError, match="committed file"):
            output_path(_parser().parse_args(["--quick", "--output", target]))


def test_a_quick_run_may_write_an_uncommitted_file(tmp_path: Path) -> None:
    assert output_path(_parser().parse_args(["--quick", "--output", str(tmp_path / "q.md")])) == tmp_path / "q.md"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--quick", "--output", "benchmarks/RESULTS.md"], ["committed file", "--quick"]),
        (["--load-seconds", "-3"], ["--load-seconds"]),
        (["--writers", "0"], ["--writers", "at least 1"]),
        (["--output", "/nonexistent/dir/out.md"], ["does not exist"]),
    ],
)
def test_mistakes_are_one_line(args: list[str], needles: list[str]) -> None:
    assert_one_line(run_cli("-m", "benchmarks", *args), *needles)
