"""Matching 50,000 against 50,000 generated customers with known truth.

    python -m bench.match_bench [N]

Prints time, precision and recall (goals: under 20 s on a 2-core machine, >= 0.99, >= 0.95).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from app.sync.fuzzy import match
from bench.matchgen import sides


def run(n: int = 50_000, repeats: int = 3) -> dict:
    left, right, truth = sides(n, seed=11)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = match(left, right)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    links = {(c.left, c.right) for c in result if c.decision == "link"}
    review = sum(1 for c in result if c.decision == "review")
    tp = len(links & truth)
    times.sort()
    cpu.sort()
    return {"records_per_side": n, "true_pairs": len(truth), "median_seconds": round(times[len(times) // 2], 2),
            "median_cpu_seconds": round(cpu[len(cpu) // 2], 2),
            "precision": round(tp / max(1, len(links)), 4), "recall": round(tp / len(truth), 4),
            "sent_to_review": review}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    figures = run(n)
    print(json.dumps(figures, indent=2))
    out = Path(__file__).with_name("results.json")
    data = json.loads(out.read_text()) if out.exists() else {}
    data["matching"] = {**figures, "command": f"python -m bench.match_bench {n}"}
    out.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
