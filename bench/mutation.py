"""Mutation testing of cnngraph/passes, cnngraph/train and backends/kernels with mutmut, in bounded time.

    pip install mutmut
    python bench/mutation.py [--sample 40] [--seed 0] [--max-children 2]

mutmut (configured in pyproject.toml, ``[tool.mutmut]``) copies the packages into ``mutants/`` and
mutates functions there; each mutant runs only the tests that reached the mutated function, out of
the fast test files the config lists. A full run is hours on two cores, so this script tests a
seeded sample of ``--sample`` mutants per package (the same sample for the same code and seed:
rerun after adding tests to compare scores), then prints the score per package and every survivor,
for ``docs/mutation.md``. Not a test and not in CI.

The copy's ``cnngraph`` gets links to its siblings (``backends``, ``frontends``, ``models``), so
``cnngraph.backends`` imports the mutated copy rather than the editable install's mapping to the
original files.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
SIBLINGS = ("backends", "frontends", "models")
PACKAGES = ("cnngraph.passes", "cnngraph.train", "backends.kernels")


def mutmut(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "mutmut", *args], cwd=ROOT)


def link_siblings() -> None:
    """mutants/cnngraph/<sibling> -> ../<sibling>, the layout the package-dir mapping installs."""
    package = MUTANTS / "cnngraph"
    package.mkdir(parents=True, exist_ok=True)
    for name in SIBLINGS:
        link = package / name
        if not link.is_symlink():
            link.symlink_to(Path("..") / name)


def all_mutants() -> dict[str, int | None]:
    """Every generated mutant's name and last exit code (None: not run), from mutmut's .meta files."""
    found: dict[str, int | None] = {}
    for meta in MUTANTS.rglob("*.py.meta"):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def package_of(name: str) -> str:
    return next(p for p in PACKAGES if name.startswith(p + "."))


def sample(names: list[str], per_package: int, seed: int) -> list[str]:
    by_package = defaultdict(list)
    for name in sorted(names):
        by_package[package_of(name)].append(name)
    rng = random.Random(seed)
    return [n for p in PACKAGES for n in rng.sample(by_package[p], min(per_package, len(by_package[p])))]


def report(chosen: list[str]) -> None:
    results = all_mutants()
    counts = defaultdict(Counter)
    for name in chosen:
        counts[package_of(name)][status_by_exit_code[results.get(name)]] += 1
    for package in PACKAGES:
        c = counts[package]
        tested = c["killed"] + c["timeout"] + c["survived"]
        score = 100.0 * (c["killed"] + c["timeout"]) / tested if tested else 0.0
        print(f"{package}: {score:.0f}% killed ({c['killed'] + c['timeout']} of {tested}; {dict(c)})")
    print("survivors:")
    for name in chosen:
        if results.get(name) == 0:
            print("  ", name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=40, help="mutants per package")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-children", default="2", help="mutants run at once")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ first (after the tests changed)")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(MUTANTS, ignore_errors=True)
    link_siblings()
    if not all_mutants():  # generation and the test-to-function stats; the name matches no mutant
        mutmut("run", "--max-children", args.max_children, "no-such-mutant")
    chosen = sample(list(all_mutants()), args.sample, args.seed)
    mutmut("run", "--max-children", args.max_children, *chosen)
    report(chosen)


if __name__ == "__main__":
    main()
