"""One emulated function instance: imports the real handler from lambda_src once (a cold
start) and serves invocations read as JSON lines on stdin, answering on the original stdout.

Environment: the function's variables from the template, AWS_REGION, the role's temporary
credentials, AWS_ENDPOINT_URL (the emulator, whose emulated IAM decides every call) and
MRK_TOOLKIT_ACCOUNT; in a VPC, MRK_TOOLKIT_RESOLVER_DIR (its DNS view, offline/emulator/network.py).
Everything the handler logs goes to stderr (the function's log).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


class LambdaContext:
    def __init__(self, name: str, timeout_s: int) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = os.environ.get("MRK_TOOLKIT_FUNCTION_ARN", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        self.aws_request_id = ""
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = "emulated"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints and logs go to the function's log, not the protocol
    sys.stdout = sys.stderr

    from offline.emulator.iam_gate import record_calls
    from offline.emulator.network import RESOLVER_DIR_ENV, install_resolver

    if os.environ.get(RESOLVER_DIR_ENV):
        install_resolver(os.environ[RESOLVER_DIR_ENV])
    calls: list[dict[str, Any]] = []
    record_calls(os.environ["MRK_TOOLKIT_ACCOUNT"], calls.append)
    module_name, function_name = os.environ["MRK_TOOLKIT_HANDLER"].rsplit(".", 1)
    started = time.perf_counter()
    handler = getattr(importlib.import_module(module_name), function_name)
    protocol.write(json.dumps({"ready": True, "init_ms": round((time.perf_counter() - started) * 1000, 1)}) + "\n")

    timeout = int(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "15"))
    for line in sys.stdin:
        request = json.loads(line)
        calls.clear()
        t0 = time.perf_counter()
        try:
            result = handler(request["event"], LambdaContext(os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""), timeout))
            reply = {"result": result}
        except Exception as exc:  # an unhandled error, as Lambda reports it (FunctionError)
            traceback.print_exc(file=sys.stderr)
            reply = {"function_error": "Unhandled", "error_type": type(exc).__name__}
        reply["duration_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        reply["calls"] = list(calls)
        protocol.write(json.dumps(reply, default=str) + "\n")


if __name__ == "__main__":
    main()
