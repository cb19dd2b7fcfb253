"""`cnngraph models`: list the zoo."""

from rich.table import Table

from cnngraph.cli.common import console

HELP = "list the model zoo"


def add_arguments(p) -> None:
    pass


def run(args) -> None:
    from cnngraph.models import zoo

    table = Table("model", "family", "description", title="cnngraph model zoo")
    for entry in zoo().values():
        table.add_row(entry.name, entry.family, entry.summary)
    console.print(table)
