"""Mutation testing of cnngraph/passes, cnngraph/train and backends/kernels with mutmut, in bounded time.

    pip install -e ".[mutation]"
    python bench/mutation.py [--sample 40] [--seed 0] [--packages cnngraph.passes ...] [--report]

mutmut (configured in pyproject.toml, ``[tool.mutmut]``) mutates functions in a copy and runs, for
each mutant, only the tests that reached the mutated function, out of the fast test files the config
lists. A full run is hours on two cores, so this script tests a seeded sample of ``--sample`` mutants
per package (the same sample for the same code and seed: rerun after adding tests to compare), then
prints the score per package and every survivor, for ``docs/mutation.md``. Not a test, not in CI.

It works in a scratch copy of the working tree (``--workdir``) laid out as installed: ``backends/``
moved to ``cnngraph/backends/`` (and ``frontends``, ``models`` likewise). mutmut names a mutant after
its file's path and checks that name against the running function's module, so the path must be the
import path; in the repository's own layout ``cnngraph.backends`` is a package-dir mapping and no
kernel mutant would ever be reached. ``--fresh`` recopies the tree (after tests or code changed).
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
MAPPED = ("backends", "frontends", "models")  # [tool.setuptools.package-dir]: cnngraph.<name> = <name>
PACKAGES = ("cnngraph.passes", "cnngraph.train", "cnngraph.backends.kernels")


def installed_layout_copy(workdir: Path) -> None:
    """The working tree (without mutants/ and caches) copied to ``workdir`` with the mapped packages moved in."""
    ignore = shutil.ignore_patterns(".git", "mutants", "__pycache__", "*.egg-info", ".pytest_cache")
    shutil.copytree(ROOT, workdir, ignore=ignore)
    for name in MAPPED:
        (workdir / name).rename(workdir / "cnngraph" / name)


def mutmut(workdir: Path, *args: str) -> int:
    return subprocess.call([sys.executable, "-m", "mutmut", *args], cwd=workdir)


def all_mutants(workdir: Path) -> dict[str, int | None]:
    """Every generated mutant's name and last exit code (None: not run), from mutmut's .meta files."""
    found: dict[str, int | None] = {}
    for meta in (workdir / "mutants").rglob("*.py.meta"):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def package_of(name: str) -> str:
    return next(p for p in PACKAGES if name.startswith(p + "."))


def sample(names: list[str], per_package: int, seed: int, packages: list[str]) -> list[str]:
    by_package = defaultdict(list)
    for name in sorted(names):
        by_package[package_of(name)].append(name)
    rng, chosen = random.Random(seed), []
    for package in PACKAGES:  # every package draws, so a package's sample does not depend on --packages
        picked = rng.sample(by_package[package], min(per_package, len(by_package[package])))
        chosen += picked if package in packages else []
    return chosen


def report(results: dict[str, int | None], chosen: list[str]) -> None:
    counts = defaultdict(Counter)
    for name in chosen:
        counts[package_of(name)][status_by_exit_code[results.get(name)]] += 1
    for package in PACKAGES:
        c = counts[package]
        caught = c["killed"] + c["timeout"]
        tested = caught + c["survived"]
        score = f"{100.0 * caught / tested:.0f}%" if tested else "-"
        print(f"{package}: {score} killed ({caught} of {tested}; {dict(c)})")
    print("survivors:")
    for name in chosen:
        if results.get(name) == 0:
            print("  ", name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=40, help="mutants per package")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES), choices=PACKAGES)
    parser.add_argument("--max-children", default="2", help="mutants run at once")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cnngraph-mutation"))
    parser.add_argument("--fresh", action="store_true", help="recopy the tree and regenerate the mutants")
    parser.add_argument("--report", action="store_true", help="only report the sample's stored results")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.workdir, ignore_errors=True)
    if not args.workdir.exists():
        installed_layout_copy(args.workdir)
    if not all_mutants(args.workdir):  # generation and the test-to-function stats; the name matches no mutant
        mutmut(args.workdir, "run", "--max-children", args.max_children, "no-such-mutant")
    chosen = sample(list(all_mutants(args.workdir)), args.sample, args.seed, args.packages)
    if not args.report:
        mutmut(args.workdir, "run", "--max-children", args.max_children, *chosen)
    report(all_mutants(args.workdir), chosen)


if __name__ == "__main__":
    main()
