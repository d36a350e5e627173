"""Shared by every test: no real AWS, ever, and a quiet jsii."""

from __future__ import annotations

import os

# Nothing in the suite may reach AWS or need credentials: these stay fake even if the
# machine has real ones (moto and the emulator accept any).
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-2",
    "AWS_EC2_METADATA_DISABLED": "true",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
