"""Runs the emulated AWS (offline/server.py: a moto server on 127.0.0.1) in its own process for the
load test, so the server and the clients do not share one interpreter lock. Prints the endpoint,
serves until stdin closes."""

import sys

from offline.server import EmulatedAws

if __name__ == "__main__":
    aws = EmulatedAws().start()
    print(aws.endpoint_url, flush=True)
    sys.stdin.read()
    aws.stop()
