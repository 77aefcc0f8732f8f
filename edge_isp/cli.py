"""The ``edge-isp`` command line: thin over the library (parse, call, render, exit code).

Each verb lives in a module of ``edge_isp.commands`` with its own ``app``; adding a verb
is adding a module name to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import sys

import typer

from edge_isp.commands._common import err
from edge_isp.errors import EdgeIspError

COMMAND_MODULES = ("core", "raw", "convert", "check", "process", "bench", "results", "gate", "train", "eval", "devices", "profile", "toolchain")

app = typer.Typer(
    help="edge-isp: learned ISP networks from PyTorch to phones and boards, verified at every step.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
for _name in COMMAND_MODULES:
    app.registered_commands.extend(importlib.import_module(f"edge_isp.commands.{_name}").app.registered_commands)


def main() -> None:
    """Console entry point: EdgeIspError -> one line on stderr and a non-zero exit."""
    try:
        app()
    except EdgeIspError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; nothing half-written was left behind")
        sys.exit(130)


if __name__ == "__main__":
    main()
