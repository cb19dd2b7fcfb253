"""The ``cnngraph`` command. Each subcommand is a module here with HELP, add_arguments and run.

Errors a user can cause print one line and exit 1; bad arguments exit 2 (argparse). ``main`` is
also the last line of defence: any other exception, a MemoryError and a Ctrl-C at any moment
(start-up included: this module and the package import nothing heavy) are one line too, and
``cnngraph --debug ...`` prints the traceback first.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
import warnings

from cnngraph import __version__
from cnngraph.errors import CnnGraphError

# Listed in the order `cnngraph --help` shows them; any other command module is appended.
ORDER = ["models", "summary", "run", "compile", "export", "train", "bench", "profile", "draw", "backends"]
NOT_COMMANDS = {"common", "__main__"}


def commands() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__)} - NOT_COMMANDS
    return [c for c in ORDER if c in found] + sorted(found - set(ORDER))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnngraph", description="Declare, compile and run convolutional networks.")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error, not only its line")
    parser.add_argument("--version", action="version", version=f"cnngraph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands():
        module = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(fn=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((w for w in words if not w.startswith("-")), "")  # for errors before parsing ends
    debug = "--debug" in words[: words.index(command)] if command in words else "--debug" in words
    try:
        args = build_parser().parse_args(words)
        command = args.command
        from cnngraph.cli.common import apply_threads  # inside: Ctrl-C while loading is one line too

        apply_threads(args)
        with warnings.catch_warnings():
            warnings.showwarning = _note_for(command)
            args.fn(args)
    except KeyboardInterrupt:
        _report(command, "interrupted", debug)
        return 130
    except CnnGraphError as e:
        _report(command, f"error: {e}", debug)
        return 1
    except MemoryError:
        _report(command, "error: out of memory (a smaller batch or input, or a larger CNNGRAPH_MAX_BYTES "
                "budget if it refused too late)", debug)
        return 1
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, never a bare traceback
        _report(command, f"error: {type(e).__name__}: {e} (an internal error: `cnngraph --debug ...` shows where)",
                debug)
        return 1
    return 0


def _note_for(command: str):
    """Warnings (an ONNX file upgraded from an old opset, say) as one line each, like errors."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"cnngraph {command}: note: {' '.join(str(message).split())}", file=sys.stderr)

    return show


def _report(command: str, message: str, debug: bool) -> None:
    """One line on stderr (whitespace folded); after the traceback with ``--debug``."""
    if debug:
        traceback.print_exc()
    prefix = f"cnngraph {command}" if command else "cnngraph"
    print(f"{prefix}: {' '.join(message.split())}", file=sys.stderr)
