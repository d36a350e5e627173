"""What the project's three command lines (``python -m offline``, ``python -m review``, ``python -m
benchmarks``) share: an expected error becomes one line on stderr naming the problem and the fix,
and a non-zero exit; ``--debug`` shows the traceback instead. Anything unexpected (a bug) still
raises with its traceback. A module of its own, beside the tools, so that no tool imports another
for it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from stacks.config import CdkJsonError, ConfigError, ContextOptionError

EXIT_ERROR = 2
DEBUG_HELP = "show the traceback of an error instead of the one-line message"


class UsageError(Exception):
    """An expected mistake; the message already says what is wrong and how to fix it."""


def quiet_jsii() -> None:
    """jsii prints Node 20's end-of-life banner as raw bytes on every aws_cdk import."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported in one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def non_negative_seconds(limit: float, unit: str = "seconds") -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
        if not 0 <= value <= limit:
            raise argparse.ArgumentTypeError(f"expected 0 to {limit:g} {unit}, got {text}")
        return value

    return parse


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def require_assembly(cdk_out: Path) -> Path:
    """A synthesized cloud assembly directory, or a UsageError saying how to make one."""
    if not (cdk_out / "manifest.json").is_file():
        what = "does not exist" if not cdk_out.exists() else "holds no manifest.json"
        raise UsageError(
            f"--cdk-out {cdk_out} {what}: it must be a synthesized cloud assembly; "
            f"run `make synth` (writes cdk.out) or `npx cdk synth -o {cdk_out}` first"
        )
    return cdk_out


def is_committed(path: Path) -> bool:
    """True if git tracks ``path`` (a file a run must not overwrite unless it is the canonical run)."""
    import subprocess

    path = path.resolve()
    try:
        done = subprocess.run(  # noqa: S603
            ["git", "ls-files", "--error-unmatch", path.name],  # noqa: S607
            cwd=path.parent,
            capture_output=True,
            check=False,
        )
    except (FileNotFoundError, NotADirectoryError):
        return False
    return done.returncode == 0


def _aws_message(exc: Exception) -> str | None:
    try:
        from botocore import exceptions as boto
    except ModuleNotFoundError:  # pragma: no cover - botocore is a pinned dependency
        return None
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return (
            f"{exc}: this command talks to a real AWS account. Configure credentials (aws configure, "
            "AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or run `make demo` for the offline run"
        )
    if isinstance(exc, boto.NoRegionError):
        return f"{exc}: set AWS_REGION or pass the regions on the command line"
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        return (
            f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}. "
            "Check the credentials' account and permissions, and that the toolkit is deployed there"
        )
    if isinstance(exc, boto.BotoCoreError):
        return f"{exc}. Check the AWS credentials, profile and network"
    return None


def one_line(exc: BaseException) -> str | None:
    """The one-line message of an expected error, or None for a bug."""
    if isinstance(exc, UsageError | ConfigError | CdkJsonError | ContextOptionError):
        return str(exc)
    if isinstance(exc, Exception) and (message := _aws_message(exc)):
        return message
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return f"{exc.strerror}: {exc.filename}. Check the path"
    return None


def run(main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; turn expected errors into one line and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = one_line(exc)
        if message is None or "--debug" in args:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
