"""Mutation fuzzing of every file format a user hands cnngraph: a typed error or a working result,
never another exception, never past the worker's memory cap, never a hang.

Each format gets CNNGRAPH_FUZZ_EXAMPLES cases (default 400; raise it for a long local run), drawn
from a seed fixed per format, each run in a worker capped at 2 GiB of address space with a time
limit per case (``tests/fuzz_worker.py``). ``python -m tests.fuzz_table`` prints the outcome counts.
"""

import os

import pytest

from tests.fuzz_formats import FORMATS
from tests.fuzz_mutations import drive
from tests.fuzz_worker import Worker

EXAMPLES = int(os.environ.get("CNNGRAPH_FUZZ_EXAMPLES", "400"))


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_mutated_file_is_a_typed_error_or_works(fmt, worker):
    def check(case):
        outcome = worker.run(fmt, *case)
        assert outcome in ("typed", "accepted"), f"{fmt} {case}: {outcome}"  # not untyped, memory or hang

    drive(fmt, EXAMPLES, check)
