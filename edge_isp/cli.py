"""The ``edge-isp`` command line: thin over the library (parse, call, render, exit code).

Each verb lives in a module of ``edge_isp.commands`` with its own ``app``; adding a verb
is adding a module name to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib

import typer

from edge_isp.commands._common import enable_verbose, run_app

COMMAND_MODULES = ("core", "raw", "convert", "check", "process", "verify", "bench", "results", "gate", "train", "eval", "devices",
                   "profile", "toolchain")

app = typer.Typer(
    help="edge-isp: learned ISP networks from PyTorch to phones and boards, verified at every step.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show the converters' own logs (TensorFlow, absl, XLA) and library warnings.")) -> None:
    if verbose:
        enable_verbose()


for _name in COMMAND_MODULES:
    app.registered_commands.extend(importlib.import_module(f"edge_isp.commands.{_name}").app.registered_commands)


def main() -> None:
    """Console entry point: every failure is one line on stderr and an exit code from the table."""
    run_app(app)


if __name__ == "__main__":
    main()
