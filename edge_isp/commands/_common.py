"""Shared pieces of the command modules: consoles, JSON output, small parsers."""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from typing import Any, NoReturn

import typer
from rich.console import Console, ConsoleDimensions

from edge_isp.errors import (
    EXIT_BAD_INPUT,
    EXIT_CONVERSION,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EdgeIspError,
    InputError,
)

# Wider than any table: CI logs and pipes keep every value whole (no "56.…").
LOG_WIDTH = 4000


class _Console(Console):
    """A terminal gets rich's own layout; anything else (a CI log, ``| tee``) gets lines
    as wide as their content instead of tables cut to 80 columns."""

    @property
    def size(self) -> ConsoleDimensions:
        real = Console.size.fget(self)  # type: ignore[attr-defined]
        return real if self.is_terminal else ConsoleDimensions(LOG_WIDTH, real.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


out = _Console()
err = _Console(stderr=True)

def _one_line(message: str) -> str:
    # Newlines inside a message (a tool's output, a path) must not split the error line.
    return " ".join(str(message).split())


def _usage_hint(exc: Exception) -> str:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", "") if ctx is not None else ""
    return f" (see '{path} --help')" if path else ""


def _run(app: typer.Typer, prog_name: str | None) -> tuple[int, str | None]:
    """Run the app; (exit code, the one-line error or None)."""
    from typer import _click
    from typer.exceptions import Abort

    debug = bool(os.environ.get("EDGE_ISP_DEBUG"))
    try:
        code = app(prog_name=prog_name, standalone_mode=False)
        return (code if isinstance(code, int) else 0), None
    except EdgeIspError as exc:
        return exc.exit_code, str(exc)
    except _click.exceptions.NoArgsIsHelpError as exc:
        if exc.format_message().strip():  # plain (non-rich) help comes back as the message
            err.print(exc.format_message(), highlight=False, markup=False)
        return EXIT_USAGE, None
    except _click.exceptions.ClickException as exc:
        return (exc.exit_code if exc.exit_code != 1 else EXIT_USAGE), f"{exc.format_message()}{_usage_hint(exc)}"
    except (KeyboardInterrupt, Abort):
        return EXIT_INTERRUPTED, None
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return EXIT_BAD_INPUT, f"cannot use{where}: {exc.strerror or exc}; check the path and its permissions"
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a bare traceback
        if debug:
            traceback.print_exc()
        return EXIT_INTERNAL, (f"internal error ({type(exc).__name__}: {exc}); this is a bug in edge-isp: "
                               f"rerun with EDGE_ISP_DEBUG=1 for the traceback and report it")


def run_app(app: typer.Typer, prog_name: str | None = None) -> NoReturn:
    """Run a Typer app with one error policy: a line on stderr and a code from the table
    (:mod:`edge_isp.errors`).

    Usage errors (the parser's) exit 2, EdgeIspError its own code, an unusable path 3,
    Ctrl-C 130, anything else is a bug: exit 8, the traceback only with
    ``EDGE_ISP_DEBUG=1``. Native C++ log noise is kept off the terminal unless
    ``--verbose`` (:mod:`edge_isp._native_log`).
    """
    from edge_isp._native_log import NATIVE_LOG

    NATIVE_LOG.start()
    code, message = _run(app, prog_name)
    kept = NATIVE_LOG.stop(keep=code in (EXIT_CONVERSION, EXIT_INTERNAL))
    if message is not None:
        tail = f" (converter log: {kept})" if kept else ""
        err.print(f"[red]error:[/] {_one_line(message)}{tail}", highlight=False, soft_wrap=True)
    if code == EXIT_INTERRUPTED:
        err.print("interrupted; nothing half-written was left behind", highlight=False)
    sys.exit(code)


def enable_verbose() -> None:
    """``--verbose``: the converters' own logs go to the terminal again."""
    from edge_isp._native_log import ENV_VERBOSE, NATIVE_LOG

    os.environ[ENV_VERBOSE] = "1"
    NATIVE_LOG.stop()
    warnings.resetwarnings()


JsonFlag = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def print_json(data: Any) -> None:
    # Plain print: rich would re-wrap long strings and break the JSON for tools.
    print(json.dumps(data, indent=2, default=str))


def parse_hw(text: str | None, what: str) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"{what} {text!r} is not HxW (for example 544x960)") from None
    return h, w


def parse_options(pairs: list[str], what: str = "option") -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when they can be (ints, bools)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"{what} {pair!r} is not key=value (for example level=1)")
        key, value = pair.split("=", 1)
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = value
    return result
