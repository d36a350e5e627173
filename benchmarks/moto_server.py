"""Runs the emulated AWS (offline/emulator/server.py: a moto server on 127.0.0.1) in its own process for the
load test, so the server and the clients do not share one interpreter lock. Prints the endpoint,
serves until stdin closes."""

import sys

from benchmarks.moto_env import FAKE_CREDENTIALS
from offline.emulator.gateway import Identity
from offline.emulator.server import EmulatedAws

if __name__ == "__main__":
    aws = EmulatedAws().start()
    # The load test's clients act as the account's administrator (the emulated IAM knows them).
    aws.gateway.register(FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], Identity(aws.account, aws.root_arn, admin=True))
    print(aws.endpoint_url, flush=True)
    sys.stdin.read()
    aws.stop()
