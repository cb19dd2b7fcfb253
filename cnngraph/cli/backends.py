"""`cnngraph backends`: each backend, whether it can run here (and if not, why), and the dtypes it runs."""

from cnngraph.cli.common import console

HELP = "list the backends, whether each can run here, and why not"


def add_arguments(p) -> None:
    pass


def run(args) -> None:
    from rich.markup import escape
    from rich.table import Table

    from cnngraph.backends.devices import all_backends

    table = Table(show_edge=False, box=None, pad_edge=False)
    for column in ("backend", "usable here", "dtypes", "what it is"):
        table.add_column(column)
    for backend in all_backends():
        why = backend.unavailable()
        table.add_row(backend.name, "yes" if why is None else escape(f"no: {why}"), ", ".join(backend.dtypes),
                      escape(backend.summary))
    console.print(table)
