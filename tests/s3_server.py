"""moto's S3 server on a free localhost port, for tests of object storage."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import boto3
import fsspec

from tests.helpers import free_port


@contextmanager
def s3_server(*buckets: str) -> Iterator[tuple[str, object]]:
    """(endpoint URL, boto3 client) of a fresh S3 server holding `buckets`."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    fsspec.AbstractFileSystem.clear_instance_cache()  # cached s3fs instances remember their endpoint
    try:
        yield endpoint, client
    finally:
        fsspec.AbstractFileSystem.clear_instance_cache()
        server.stop()
