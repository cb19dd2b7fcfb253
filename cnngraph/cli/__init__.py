"""The ``cnngraph`` command. Each subcommand is a module here with HELP, add_arguments and run.

Errors a user can cause print one line and exit 1; bad arguments exit 2 (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from cnngraph.cli.common import apply_threads
from cnngraph.errors import CnnGraphError

# Listed in the order `cnngraph --help` shows them; any other command module is appended.
ORDER = ["models", "summary", "run", "compile", "export", "train", "bench", "profile", "draw", "backends"]
NOT_COMMANDS = {"common", "__main__"}


def commands() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__)} - NOT_COMMANDS
    return [c for c in ORDER if c in found] + sorted(found - set(ORDER))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnngraph", description="Declare, compile and run convolutional networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands():
        module = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(fn=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        apply_threads(args)
        args.fn(args)
    except CnnGraphError as e:
        print(f"cnngraph {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnngraph {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
