"""`python -m offline deploy`: the emulator's ``cdk deploy --all``. Tells the emulator that
``python -m offline up`` serves on this machine where a synthesized cloud assembly is (the
endpoint and the emulated administrator's credentials come from the environment it printed);
the emulator applies it as a stack update (offline/emulator/provisioner.py) and answers what changed."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cli_support import UsageError
from offline.emulator.served import DEPLOY_PATH


def send_assembly(cdk_out: Path, *, timeout_s: float = 900.0) -> dict[str, Any]:
    """POST the assembly's path to the running emulator, signed like any AWS request."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint:
        raise UsageError(
            "deploy applies a changed config to the emulator `python -m offline up` serves: export the lines it "
            "prints (AWS_ENDPOINT_URL and the keys) first. For a real account: npx cdk deploy --all"
        )
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise UsageError("no AWS credentials in the environment: export the keys `python -m offline up` printed")
    body = json.dumps({"cdk_out": str(cdk_out.resolve())}).encode()
    request = AWSRequest(
        method="POST", url=endpoint.rstrip("/") + DEPLOY_PATH, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(credentials, "cloudformation", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")).add_auth(request)
    outgoing = urllib.request.Request(request.url, data=body, headers=dict(request.headers.items()), method="POST")  # noqa: S310 - the emulator's endpoint
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout_s) as answer:  # noqa: S310
            return json.loads(answer.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        try:
            message = json.loads(detail).get("message", detail)
        except ValueError:
            message = detail
        raise UsageError(f"the emulator refused the update: {message}") from None
    except urllib.error.URLError as error:
        raise UsageError(
            f"no emulator answers at {endpoint} ({error.reason}): is `python -m offline up` running?"
        ) from None


def render(result: dict[str, Any]) -> list[str]:
    lines = [*result["changes"]] or ["no changes"]
    lines.append(f"deployed; regions now: {', '.join(result['regions'])}")
    gone = result.get("not_in_assembly", [])
    if gone:
        regions = sorted({s["region"] for s in gone})
        lines.append(
            "no longer in the app, still deployed (cdk deploy deletes no stack): "
            + ", ".join(s["name"] for s in gone)
            + "; delete them with: "
            + "; ".join(f"python -m offline destroy --region {r}" for r in regions)
        )
    return lines
