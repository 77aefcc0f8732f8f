"""``edge-isp devices``: connected devices and the profile each matched; the known profiles."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from edge_isp.commands._common import JsonFlag, err, out, print_json

app = typer.Typer()


@app.command()
def devices(
    serial: list[str] = typer.Option([], "--serial", "-s", help="Also open this ADB device (USB serial or HOST:PORT)."),
    host: list[str] = typer.Option([], "--host", help="Also open this SSH board ([USER@]HOST[:PORT])."),
    transport: str = typer.Option("auto", "--transport", help="auto | adb-shell | adb | ssh | local."),
    known: bool = typer.Option(True, "--known/--no-known", help="Also probe devices reached before."),
    profiles: bool = typer.Option(False, "--profiles", help="List the device profiles instead."),
    adb_server_port: Optional[int] = typer.Option(None, "--adb-server-port", help="adb server port (adb -P)."),
    as_json: bool = JsonFlag,
) -> None:
    """List connected devices (ADB, SSH, remembered addresses) with the profile each matched."""
    if profiles:
        from edge_isp.devices.profiles import list_profiles

        rows = [p.to_dict() for p in list_profiles()]
        if as_json:
            print_json(rows)
            return
        table = Table(title="device profiles")
        for col in ("profile", "aliases", "os", "SoC", "accelerators", "targets", "power"):
            table.add_column(col, overflow="fold")
        for p in list_profiles():
            accs = ", ".join(f"{a.name}" + (f" ({a.nnapi_name})" if a.nnapi_name else "") for a in p.accelerators)
            table.add_row(p.name, ", ".join(p.aliases), p.os, str(p.soc.get("name", "")), accs,
                          ", ".join(p.targets), ", ".join(p.power.get("sources", [])) or "-")
        out.print(table)
        return
    from edge_isp.devices.discovery import list_connected

    found, notes = list_connected(adb_server_port, serials=serial, hosts=host, transport=transport,
                                  include_known=known)
    try:
        rows = [{**d.identity(), "device_id": d.device_id,
                 "profile_description": d.profile.description if d.profile else ""} for d in found]
    finally:
        for d in found:
            d.close()
    if as_json:
        print_json({"devices": rows, "notes": notes})
        return
    table = Table(title="connected devices")
    for col in ("address", "transport", "device", "SoC", "OS", "ABI", "profile"):
        table.add_column(col, overflow="fold")
    for r in rows:
        os_name = f"Android {r['android_version']} (API {r['api_level']})" if r["os"] == "android" else r["os"]
        table.add_row(r["address"], r["transport"], " ".join(x for x in (r["manufacturer"], r["model"]) if x)
                      or r["device"], r["soc"], os_name, r["abi"], r["profile"] or "-")
    out.print(table)
    if not rows:
        out.print("no devices found: plug one in with USB debugging on, or pass --serial HOST:PORT / --host HOST")
    for n in notes:
        err.print(f"[yellow]note:[/] {n}", highlight=False)
