"""`cnngraph ...` as a user runs it: a subprocess with its exit code, stdout and stderr, at a given width."""

import os
import subprocess
import sys


def cnngraph(*argv, columns: int | None = 80, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI piped (not a terminal); ``columns`` sets COLUMNS, as a terminal of that width does."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "cnngraph.cli", *map(str, argv)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess, command: str) -> str:
    """The error line of a failed command, after checking it is one line with no traceback."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"cnngraph {command}: error: "), lines[0]
    return lines[0]
