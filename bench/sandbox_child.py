"""A provider sandbox served over HTTP on 127.0.0.1 in a process of its own, for the migration benchmark.

    python -m bench.sandbox_child PROVIDER [--scale X] [--by time|count] [--companies N]

The provider is another machine to the app: its CPU is not the app's, and waiting on its answer
releases the app's GIL. ``--by time`` keeps the provider's own counts in windows X times shorter (what
``crossledger sandbox serve --limits-scale X`` cannot do: it multiplies the counts); ``--by count``
is that contract. ``--companies N`` seeds N generated CRM companies (the HubSpot side).

It prints one JSON line (its address and its own limits), then answers one JSON line per command
read from stdin, counting at its own request log:

    grant CLIENT_ID   a token set for that client, and what the OAuth callback would carry
    mark              start counting: the request log, each request's arrival and this process's CPU
    report            since the mark: calls, arrival times (monotonic), statuses, CPU seconds
    quit              stop serving and exit (so does the end of stdin)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from typing import Any

from app.sandbox.registry import sandbox_class
from app.sandbox.server import serve
from bench.matchgen import entities


class _Faster:
    """Mixed into a sandbox: every rate window a ``scale``-th as long, the same count in it; each request's
    arrival time is kept."""

    scale: float
    stamps: list[float]

    def check_rate(self, key: str, limit: int, window: float) -> float | None:
        return super().check_rate(key, limit, window / self.scale)  # type: ignore[misc]

    def _peek(self, key: str, limit: int, window: float) -> float | None:  # Xero's look before counting
        return super()._peek(key, limit, window / self.scale)  # type: ignore[misc]

    def _remaining(self, key: str, limit: int, window: float) -> str:  # Xero's X-MinLimit-Remaining
        return super()._remaining(key, limit, window / self.scale)  # type: ignore[misc]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.stamps.append(time.monotonic())
        return super().__call__(environ, start_response)  # type: ignore[misc]


def sandbox(provider: str, scale: float, by: str) -> Any:
    """The provider's sandbox, empty, its limits x ``scale`` by time (shorter windows) or by count."""
    cls = sandbox_class(provider)
    cls = type(f"Faster{cls.__name__}", (_Faster, cls), {"scale": scale if by == "time" else 1.0})
    box = cls()
    box.stamps = []
    box.seed("empty")
    if by == "count":
        box.scale_limits(scale)
    return box


def seed_companies(box: Any, n: int) -> None:
    """``n`` generated companies (bench/matchgen.py names), each with an email, phone and address."""
    rng = random.Random(5)
    start = int((time.time() - 86400) * 1000)
    for i, e in enumerate(entities(n, seed=3)):
        domain = re.sub(r"(\.[a-z.]+)(\d+)$", r"\2\1", e["domain"])  # harbourbakery42.com
        props = {"name": f"{e['name']} {e['suffix']}".strip(), "domain": domain,
                 "billing_email": f"accounts@{domain}", "phone": f"+44 20 {rng.randrange(1000, 9999)} "
                                                                     f"{rng.randrange(1000, 9999)}",
                 "city": "London", "country": "United Kingdom", "zip": "EC1A 1BB"}
        box._insert("companies", props, start + i)


def create_limits(provider: str, box: Any) -> list[tuple[int, float]]:
    """The sandbox's own (unscaled) limits a batch of customer creates counts against: (calls, seconds)."""
    if provider == "quickbooks":
        return [box.rate_limit or (500, 60.0), box.batch_limit]
    if provider == "xero":
        return [(box.minute_limit, 60.0), (box.app_minute_limit, 60.0), (box.day_limit, 86400.0)]
    return [box.rate_limit] if box.rate_limit else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("provider")
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--by", choices=("time", "count"), default="time")
    parser.add_argument("--companies", type=int, default=0)
    args = parser.parse_args()
    box = sandbox(args.provider, args.scale, args.by)
    if args.companies:
        seed_companies(box, args.companies)
    server = serve(box)
    out = sys.stdout

    def say(obj: Any) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    say({"url": server.url, "limits": create_limits(args.provider, box)})
    logged, cpu = 0, time.process_time()
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "grant":
            say({"tokens": box.grant_tokens(arg), "callback": box.test_callback_params()})
        elif command == "mark":
            with box.lock:
                box.stamps.clear()
                logged, cpu = len(box.request_log), time.process_time()
            say({"ok": True})
        elif command == "report":
            log = box.request_log[logged:]
            say({"calls": len(log), "stamps": list(box.stamps), "cpu_seconds": time.process_time() - cpu,
                 "statuses": dict(Counter(str(status) for _, _, status in log))})
        elif command == "quit":
            break
    server.stop()


if __name__ == "__main__":
    main()
