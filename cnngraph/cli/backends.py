"""`cnngraph backends`: each backend, whether it can run here (and if not, why), and the dtypes it runs."""

from cnngraph.cli import common
from cnngraph.cli.common import console

HELP = "list the backends, whether each can run here, and why not"


def add_arguments(p) -> None:
    pass


def run(args) -> None:
    from rich.markup import escape

    from cnngraph.backends.devices import all_backends

    table = common.table("backend", "here", "dtypes", "what it is")
    reasons = []
    for backend in all_backends():
        why = backend.unavailable()
        if why is not None:
            reasons.append(f"{backend.name} cannot run here: {why}")
        table.add_row(backend.name, "yes" if why is None else "no", ", ".join(backend.dtypes), escape(backend.summary))
    console.print(table)
    for line in reasons:
        console.print(line, markup=False)
