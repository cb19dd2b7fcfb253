"""The ``cnngraph`` command. Each subcommand is a module here with HELP, add_arguments and run.

Errors a user can cause print one line and exit 1; bad arguments exit 2 (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cnngraph.errors import CnnGraphError

COMMANDS = ["models", "summary", "run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnngraph", description="Declare, compile and run convolutional networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(fn=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except CnnGraphError as e:
        print(f"cnngraph {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnngraph {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
