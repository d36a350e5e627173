"""The embedded emulated AWS: a moto server on 127.0.0.1 (a free port), all regions."""

from __future__ import annotations

import logging
import os
import urllib.request
from types import TracebackType

import boto3

MOTO_ACCOUNT = "123456789012"  # moto's default account


class EmulatedAws:
    """Start/stop a moto server in this process. ``session`` holds administrator credentials
    for provisioning and inspection; functions get their own role credentials."""

    def __init__(self) -> None:
        self._server = None
        self.endpoint_url = ""
        self.account = MOTO_ACCOUNT
        self.session = boto3.Session(
            aws_access_key_id="emulator-admin",
            aws_secret_access_key="emulator-admin",  # noqa: S106 - the emulator accepts any
            region_name="us-east-1",
        )

    def start(self) -> EmulatedAws:
        from moto.server import ThreadedMotoServer

        from offline.moto_patches import apply_moto_mrk_patch

        apply_moto_mrk_patch()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from an empty AWS.
        self.reset()
        return self

    def reset(self) -> None:
        """Forget every resource (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310 - our local server
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def client(self, service: str, region: str):  # type: ignore[no-untyped-def]
        return self.session.client(service, region_name=region, endpoint_url=self.endpoint_url)

    def stop(self) -> None:
        if self._server is not None:
            self.reset()
            self._server.stop()
            self._server = None

    def __enter__(self) -> EmulatedAws:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()
