"""How the chain talks to the user: timestamped progress lines on stdout, one `[CoIN] error: ...` line on stderr
and exit status 1 for anything the user must fix."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable


class ChainError(Exception):
    """Something the user must fix (a missing file, an unfinished stage, a bad setting); the message says what."""


Log = Callable[[str], None]


def line(message: str) -> str:
    """`[CoIN HH:MM:SS] message`, stamped now."""
    return f"[CoIN {time.strftime('%H:%M:%S')}] {message}"


def log(message: str) -> None:
    """Print the message as a progress line and flush (child processes write to the same stream)."""
    print(line(message), flush=True)


def quiet(message: str) -> None:
    """A Log that drops the message."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a command-line entry point: a ChainError or ValueError ends it with one error line and status 1."""
    try:
        status = main()
    except (ChainError, ValueError) as err:
        sys.stdout.flush()
        print(f"[CoIN] error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(status or 0)
