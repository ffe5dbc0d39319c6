"""pytest fixtures for S3 tests: a moto S3 server on a free loopback port.

Import the fixtures once, in a conftest (``tests/vault/conftest.py`` does), so that one moto
server serves the whole session; test modules then only import helpers (``MotoS3``,
``FAST_RETRY``, ``free_port``). Importing a fixture into several modules would start a server
per module::

    from s3fixture import moto_s3, s3_backend  # noqa: F401  (fixtures, in a conftest)

* ``moto_s3`` (session): a running ``MotoS3`` (``.endpoint_url``, ``.new_bucket()``,
  ``.backend(bucket, prefix)``, ``.url(bucket, prefix)``). Dummy credentials are put in the
  environment for the session, so ``from_url("s3://...")`` works in tests as it does in production.
* ``s3_backend`` (function): an ``S3Backend`` on a fresh, empty bucket, with short retry delays.

moto keeps its state per process, not per server: a second ``MotoS3`` (e.g. one a test stops and
restarts to simulate an outage) sees the same buckets. Bucket names are unique per call.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from dingvault.vault.backends.s3 import S3Backend

_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Keep a developer's real ~/.aws config out of the tests.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_counter = itertools.count()

# Fast-failing settings: tests must not wait a minute for a retry budget meant for production.
FAST_RETRY = {
    "max_attempts": 2,
    "connect_rounds": 2,
    "retry_delay": 0.05,
    "connect_timeout": 1.0,
    "read_timeout": 10.0,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoS3:
    """A moto S3 server on 127.0.0.1; ``stop()``/``start()`` reuse the same port."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def new_bucket(self, stem: str = "vault") -> str:
        name = f"{stem}-{os.getpid()}-{next(_counter)}"
        self.client().create_bucket(Bucket=name)
        return name

    def url(self, bucket: str, prefix: str = "") -> str:
        return f"s3://{bucket}/{prefix}?endpoint_url={self.endpoint_url}&region=us-east-1"

    def backend(self, bucket: str | None = None, prefix: str = "", **opts: object) -> S3Backend:
        return S3Backend(
            bucket or self.new_bucket(),
            prefix,
            endpoint_url=self.endpoint_url,
            region="us-east-1",
            **{**FAST_RETRY, **opts},  # type: ignore[arg-type]
        )


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _DUMMY_ENV.items():
            mp.setenv(k, v)
        server = MotoS3().start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def s3_backend(moto_s3: MotoS3) -> Iterator[S3Backend]:
    backend = moto_s3.backend()
    try:
        yield backend
    finally:
        backend.close()
