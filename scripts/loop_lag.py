"""How long the API server's event loop keeps a request waiting while the upload API is
under load (docs/operations.md#faults): for the soak.

The probe is GET /contact-imports/openapi.json, an `async def` route answering a document
built once: it runs on the event loop alone, so its latency is the loop's lag plus the
round trip. It is measured first on an idle server, then while `--concurrency` clients
read imports as fast as they are answered (the list, and each `--import-id`). A route
that blocked the loop (a blocking call in an `async def`) shows as probes waiting as long
as that call; routes waiting on Airflow or the database in worker threads do not.

    python scripts/loop_lag.py http://127.0.0.1:8080 --token "$JWT" --import-id ID --seconds 60

Prints one JSON object: the probe's latencies (ms: median, p99, max) idle and under load,
and the load's answers by status code. Exit status 1 when any answer of the load was a
5xx other than 503 (the API's "not now" answer).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter

import httpx

PLUGIN_PREFIX = "/contact-imports"
API = f"{PLUGIN_PREFIX}/api/v1"
PROBE_EVERY = 0.2  # seconds


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies) or [float("nan")]
    return {"probes": len(latencies), "median_ms": round(statistics.median(ordered) * 1000, 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


async def probe(client: httpx.AsyncClient, until: float) -> list[float]:
    latencies = []
    while time.monotonic() < until:
        started = time.perf_counter()
        (await client.get(f"{PLUGIN_PREFIX}/openapi.json")).raise_for_status()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(PROBE_EVERY)
    return latencies


async def load(client: httpx.AsyncClient, paths: list[str], until: float, answers: Counter) -> None:
    n = 0
    while time.monotonic() < until:
        try:
            answers[(await client.get(paths[n % len(paths)])).status_code] += 1
        except httpx.HTTPError as exc:
            answers[type(exc).__name__] += 1
        n += 1


async def measure(args) -> dict:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    limits = httpx.Limits(max_connections=args.concurrency + 2)
    async with httpx.AsyncClient(base_url=args.url.rstrip("/"), headers=headers, timeout=args.timeout,
                                 limits=limits) as client:
        idle = await probe(client, time.monotonic() + min(5.0, args.seconds))
        paths = [f"{API}/imports"] + [f"{API}/imports/{i}" for i in args.import_id]
        answers: Counter = Counter()
        until = time.monotonic() + args.seconds
        loaded, *_ = await asyncio.gather(probe(client, until),
                                          *(load(client, paths, until, answers) for _ in range(args.concurrency)))
    return {"idle": summary(idle), "under_load": summary(loaded), "concurrency": args.concurrency,
            "answers": {str(code): count for code, count in sorted(answers.items(), key=str)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="Airflow's API server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", default=os.environ.get("AIRFLOW_TOKEN"), help="a JWT from POST /auth/token")
    parser.add_argument("--import-id", action="append", default=[], help="an import to read too (repeatable)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before one request counts as lost")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args))
    print(json.dumps(result, indent=2))
    failed = [code for code in result["answers"] if code.isdigit() and int(code) >= 500 and code != "503"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
