"""Re-measure issue 12's table: per format, how many mutated files gave a typed error, were accepted,
raised another exception, blew the memory cap or hung.

    python -m tests.fuzz_table [--cases 2000] [--formats ONNX,photo]

Cases are drawn as in ``tests/test_fuzz.py`` (same strategies, seed fixed per format), without
stopping at a failure; every case that was not typed or accepted is listed under the table.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from hypothesis import Phase

from tests.fuzz_formats import FORMATS
from tests.fuzz_mutations import drive
from tests.fuzz_worker import BUDGET, CAP, Worker

COLUMNS = ("typed", "accepted", "untyped", "memory", "hang")


def measure(fmt: str, cases: int, worker: Worker) -> tuple[Counter, Counter]:
    counts, failures = Counter(), Counter()

    def record(case):
        outcome = worker.run(fmt, *case)
        kind = outcome.split(":")[0]
        counts[kind] += 1
        if kind not in ("typed", "accepted"):
            failures[f"{outcome} <- {case}"] += 1

    drive(fmt, cases, record, phases=(Phase.generate,))
    return counts, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per format (default 2000)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated format names")
    args = parser.parse_args()
    worker = Worker()
    print(f"{args.cases} cases per format; worker capped at {CAP // 2**30} GiB (RLIMIT_AS), "
          f"CNNGRAPH_MAX_BYTES={int(BUDGET) // 2**20} MiB\n")
    print("| format | cases | typed error | accepted | untyped exception | memory blow-up | hang | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    notes = []
    try:
        for fmt in args.formats.split(","):
            start = time.perf_counter()
            counts, failures = measure(fmt, args.cases, worker)
            row = " | ".join(str(counts[c]) for c in COLUMNS)
            print(f"| {fmt} | {sum(counts.values())} | {row} | {time.perf_counter() - start:.0f} |", flush=True)
            notes += [f"{fmt}: {n} x {outcome}" for outcome, n in failures.most_common()]
    finally:
        worker.close()
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()
