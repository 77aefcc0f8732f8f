"""``edge-isp toolchain``: install and list the isolated vendor-compiler environments."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, print_json

app = typer.Typer()

_ACTIONS = ("list", "install")


@app.command()
def toolchain(
    action: str = typer.Argument(..., help="list | install"),
    name: Optional[str] = typer.Argument(None, help="Toolchain to install (e.g. vela)."),
    force: bool = typer.Option(False, "--force", help="Reinstall even if it is installed."),
    addon: list[str] = typer.Option([], "--addon", help="Optional add-on to install too (e.g. a vendor SDK; see 'toolchain list')."),
    as_json: bool = JsonFlag,
) -> None:
    """Vendor compilers in their own environments: 'toolchain list', 'toolchain install vela'."""
    from edge_isp import toolchains
    from edge_isp.errors import InputError, UsageError

    if action not in _ACTIONS:
        raise InputError(f"toolchain action {action!r} must be one of {', '.join(_ACTIONS)} "
                         "(e.g. 'edge-isp toolchain install vela')")
    if action == "install":
        if not name:
            raise UsageError("say which toolchain to install, e.g. 'edge-isp toolchain install vela'; "
                             "'edge-isp toolchain list' shows them")
        tc = toolchains.get_toolchain(name)
        err.print(f"installing {tc.name} ({', '.join(tc.requirements)}) into {toolchains.env_path(tc.name)} ...")
        st = toolchains.install(tc.name, force=force, addons=tuple(addon))
        if as_json:
            print_json(st.to_dict())
        else:
            out.print(f"{st.name} {st.version} installed in {st.path}")
        return
    rows = toolchains.list_toolchains()
    if name:
        rows = [toolchains.status(toolchains.get_toolchain(name).name)]
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    table = Table(title=f"toolchains in {toolchains.toolchains_root()}", title_justify="left")
    for col in ("name", "installed", "version", "path", "summary"):
        table.add_column(col)
    for r in rows:
        addons = toolchains.get_toolchain(r.name).addons
        summary = r.summary + (f" (add-ons: {', '.join(sorted(addons))})" if addons else "")
        table.add_row(r.name, "yes" if r.installed else "no", r.version or "-", str(r.path), summary)
    out.print(table)
