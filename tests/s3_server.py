"""moto's S3 server on a free localhost port, for tests of object storage."""
from __future__ import annotations

import urllib.request
from contextlib import contextmanager
from typing import Iterator

import boto3
import fsspec

from tests.helpers import free_port

_running: dict[str, object] = {}  # endpoint -> its ThreadedMotoServer


def _start(port: int):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    return server


@contextmanager
def s3_server(*buckets: str) -> Iterator[tuple[str, object]]:
    """(endpoint URL, boto3 client) of a fresh S3 server holding `buckets`."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    _running[endpoint] = _start(port)
    # moto keeps its buckets in this process across servers: start from none
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    forget_filesystems()
    try:
        yield endpoint, client
    finally:
        forget_filesystems()
        _running.pop(endpoint).stop()


def stop(endpoint: str) -> None:
    """The S3 server at `endpoint` goes down (start_again brings it back)."""
    _running[endpoint].stop()


def start_again(endpoint: str) -> None:
    """The stopped S3 server at `endpoint` up again on its port, with the buckets and
    objects it had (moto keeps them in this process)."""
    _running[endpoint] = _start(int(endpoint.rsplit(":", 1)[1]))


def forget_filesystems() -> None:
    """Cached s3fs instances remember an endpoint: an earlier test's server, stopped. Each
    filesystem class keeps its own cache, so clearing AbstractFileSystem's leaves s3fs's."""
    import s3fs

    fsspec.AbstractFileSystem.clear_instance_cache()
    s3fs.S3FileSystem.clear_instance_cache()
