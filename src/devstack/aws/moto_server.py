"""moto's server standing in for AWS (the resources of the stack map are made on it by `resources`).

boto3 reads `AWS_ENDPOINT_URL`, so the Lambdas' code runs unchanged against it.

Example (not run: starts a moto server):
    >>> server = MotoServer().start()               # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os

from moto.server import ThreadedMotoServer

REGION = "us-east-1"
AWS_ENV = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class MotoServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call drowns the console
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.host = host

    def start(self) -> MotoServer:
        self._server.start()
        return self

    @property
    def port(self) -> int:
        return int(self._server.get_host_and_port()[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a process needs to talk to this server through plain boto3."""
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        self._server.stop()


def apply_environment(env: dict[str, str]) -> None:
    os.environ.update(env)
