"""The embedded emulated AWS: a moto server on 127.0.0.1 (a free port, or the one asked for), all regions, behind
the emulated IAM (offline/emulator/gateway.py), in the account the assembly names."""

from __future__ import annotations

import logging
import os
import socket
import urllib.request
from types import TracebackType

import boto3

from offline.emulator.gateway import Gateway, Identity

MOTO_ACCOUNT = "123456789012"  # moto's default account: for account-agnostic assemblies
# The IAM user `python -m offline up` hands out, as a new account's owner creates one for everyday work
# (AWS refuses sts:AssumeRole to the root user), with AWS's managed policy for full access.
ADMIN_USER = "Administrator"
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"


def _server_class():  # type: ignore[no-untyped-def]
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class GatedMotoServer(ThreadedMotoServer):
        """moto's threaded server with the emulated IAM in front of it."""

        gateway: Gateway
        error: OSError | None = None

        def _server_entry(self) -> None:
            self.gateway = Gateway(DomainDispatcherApplication(create_backend_app))
            try:
                self._server = make_server(
                    self._ip_address, self._port, self.gateway, True, request_handler=MotoRequestHandler
                )
            except OSError as exc:  # the port is taken: start() raises it instead of waiting forever
                self.error = exc
                self._server_ready_event.set()
                return
            self._server_ready_event.set()
            self._server.serve_forever()

    return GatedMotoServer


class PortTaken(Exception):
    """The port asked for is in use on 127.0.0.1."""


def check_port_free(port: int) -> None:
    """Raise PortTaken if ``port`` cannot be bound on 127.0.0.1 (as the server binds it: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortTaken(f"127.0.0.1:{port} is in use ({exc.strerror})") from None


def _user_access_key(account: str, user_name: str, keys: dict[str, str]) -> None:
    """An access key of the user in moto's IAM with the id and secret given (moto's CreateAccessKey draws
    them at random), so that ListAccessKeys and GetCallerIdentity know it."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["aws"]
    key = backend.create_access_key(user_name)
    del backend.access_keys[key.physical_resource_id]
    key.access_key_id, key.secret_access_key = keys["AccessKeyId"], keys["SecretAccessKey"]
    backend.access_keys[key.physical_resource_id] = key


class EmulatedAws:
    """Start/stop a moto server in this process, serving ``account``. ``session`` holds the
    account's root user's credentials for provisioning and inspection (AWS lets the root user do
    anything but assume a role); ``admin_user_keys`` those of an IAM user with AdministratorAccess,
    for clients that assume roles; functions and probes get role credentials from ``credentials_for``."""

    def __init__(self, account: str | None = None, port: int = 0) -> None:
        self._server = None
        self.port = port  # 0: a free port
        self.endpoint_url = ""
        self.account = account or MOTO_ACCOUNT
        self.admin_key = f"EMULATORADMIN{self.account}"
        self._admin_user: dict[str, str] | None = None
        self.session = boto3.Session(
            aws_access_key_id=self.admin_key,
            aws_secret_access_key="emulator-admin",  # noqa: S106 - the emulator accepts any
            region_name="us-east-1",
        )

    @property
    def root_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:root"

    @property
    def gateway(self) -> Gateway:
        assert self._server is not None, "start() first"
        return self._server.gateway

    def start(self) -> EmulatedAws:
        from offline.emulator.moto_patches import apply_moto_patches

        apply_moto_patches()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        server = _server_class()(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        if server.error is not None:
            raise PortTaken(f"127.0.0.1:{self.port} is in use ({server.error.strerror})")
        self._server = server
        self.gateway.register(self.admin_key, Identity(self.account, self.root_arn, admin=True))
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from an empty AWS.
        self.reset()
        return self

    @property
    def admin_user_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:user/{ADMIN_USER}"

    def admin_user_keys(self) -> dict[str, str]:
        """The access key of the account's IAM user ``ADMIN_USER`` (AdministratorAccess attached), created
        in the emulated IAM on first use: ``AccessKeyId`` and ``SecretAccessKey``. Fixed per account, as
        the root user's: the exports of one `up` stay valid for the next (and for every emulator of a
        test process, whose boto3 default session keeps the credentials it first read)."""
        if self._admin_user is None:
            iam = self.client("iam", "us-east-1")
            iam.create_user(UserName=ADMIN_USER)
            iam.attach_user_policy(UserName=ADMIN_USER, PolicyArn=ADMINISTRATOR_ACCESS)
            keys = {"AccessKeyId": f"AKIA{self.account}ADMN", "SecretAccessKey": f"emulator-{ADMIN_USER}"}
            _user_access_key(self.account, ADMIN_USER, keys)
            self.gateway.register(keys["AccessKeyId"], Identity(self.account, self.admin_user_arn, admin=True))
            self._admin_user = keys
        return dict(self._admin_user)

    def credentials_for(self, role_arn: str) -> dict[str, str]:
        """Temporary credentials of a role of this account (as AssumeRole would return)."""
        return self.gateway.issue(Identity(self.account, role_arn))

    def role_session(self, role_arn: str) -> boto3.Session:
        creds = self.credentials_for(role_arn)
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def reset(self) -> None:
        """Forget every resource (moto's own reset endpoint), the IAM user's key with its user."""
        if self._admin_user is not None:
            self.gateway.forget(self._admin_user["AccessKeyId"])
            self._admin_user = None
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
