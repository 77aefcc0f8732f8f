"""Power, temperature and memory sampling on the device, and turning samples into watts.

The harness runs one shell script on the device that samples every power file of the
chosen source at a fixed rate (idle first, then while the benchmark runs, reading the
benchmark process's ``VmHWM`` too) and prints blocks::

    @S <uptime s>           one sample
    @F <i>                  the content of the i-th file of the source follows
    @H <kB>                 VmHWM of the benchmark process
    @B start <uptime> | @B end <uptime> <exit status>
    @T <phase> / <zone type> <temp>

Sources: ``odpm`` (Pixel on-device power monitors, cumulative uW*s per rail with t=ms),
``battery`` (current_now / voltage_now: unit and sign are detected, never assumed),
``hwmon`` (power*_input uW, or in*_input mV x curr*_input mA per rail).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from edge_isp.devices.profiles import DeviceProfile
from edge_isp.devices.transport import Transport, quote, quote_glob

_ODPM_LINE = re.compile(r"CH\d+\(T=(\d+)\)\[([^\]]+)\],\s*(\d+)")


@dataclass
class PowerSource:
    kind: str                               # odpm | battery | hwmon | none
    files: list[str] = field(default_factory=list)          # resolved device paths, sampled in order
    rails: list[dict[str, Any]] = field(default_factory=list)   # hwmon: {rail, power|voltage+current index}
    current_unit: str = "auto"
    voltage_unit: str = "auto"
    sign: str = "auto"
    description: str = ""

    @property
    def available(self) -> bool:
        return self.kind != "none" and bool(self.files)


def _resolve(transport: Transport, patterns: list[str]) -> list[list[str]]:
    """Expand globs on the device; one list of existing readable paths per pattern.

    Patterns come from profile TOML files: only their glob characters reach the shell unquoted."""
    script = "; ".join(f"echo '@G {i}'; for f in {quote_glob(str(p))}; do [ -r \"$f\" ] && echo \"$f\"; done"
                       for i, p in enumerate(patterns))
    out = transport.run(script or "true", timeout=20).stdout
    found: list[list[str]] = [[] for _ in patterns]
    cur = -1
    for line in out.splitlines():
        if line.startswith("@G "):
            cur = int(line[3:])
        elif line.strip() and cur >= 0:
            found[cur].append(line.strip())
    return found


def _hwmon_auto(transport: Transport) -> list[dict[str, str]]:
    """Every hwmon sensor with a power file (INA219/226 style), as rails."""
    out = transport.run("for d in /sys/class/hwmon/hwmon*; do n=$(cat $d/name 2>/dev/null); "
                        "for p in $d/power*_input; do [ -r \"$p\" ] && echo \"$n $p\"; done; done", timeout=20).stdout
    rails = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            rails.append({"rail": parts[0], "power": parts[1], "total": True})
    return rails


def find_power_source(transport: Transport, profile: DeviceProfile | None, prefer: str | None = None) -> PowerSource:
    """The first of the profile's power sources that exists on this device."""
    power = profile.power if profile else {"sources": ["battery", "hwmon"]}
    order = [prefer] if prefer else list(power.get("sources", [])) or ["battery", "hwmon"]
    for kind in order:
        if kind == "odpm":
            pattern = power.get("odpm", "/sys/bus/iio/devices/iio:device*/energy_value")
            files = _resolve(transport, [pattern])[0]
            if files:
                return PowerSource("odpm", files, description=f"on-device power monitors ({len(files)} x energy_value)")
        elif kind == "battery":
            bat = power.get("battery", {})
            cur = bat.get("current_now", "/sys/class/power_supply/battery/current_now")
            vol = bat.get("voltage_now", "/sys/class/power_supply/battery/voltage_now")
            found = _resolve(transport, [cur, vol])
            if found[0] and found[1]:
                return PowerSource("battery", [found[0][0], found[1][0]], current_unit=bat.get("current_unit", "auto"),
                                   voltage_unit=bat.get("voltage_unit", "auto"), sign=bat.get("sign", "auto"),
                                   description=f"battery {found[0][0]} x {found[1][0]}")
        elif kind == "hwmon":
            rails_cfg = power.get("hwmon") or _hwmon_auto(transport)
            files: list[str] = []
            rails = []
            for rail in rails_cfg:
                keys = [k for k in ("power", "voltage", "current") if k in rail]
                paths = _resolve(transport, [rail[k] for k in keys])
                if not all(paths):
                    continue
                entry = {"rail": rail.get("rail", "?"), "total": bool(rail.get("total", False))}
                for k, p in zip(keys, paths):
                    entry[k] = len(files)
                    files.append(p[0])
                rails.append(entry)
            if rails:
                names = ", ".join(r["rail"] for r in rails)
                return PowerSource("hwmon", files, rails=rails, description=f"hwmon rails {names}")
    return PowerSource("none", description="no power source found on the device")


@dataclass
class Sample:
    t: float                                   # device uptime, s
    files: dict[int, str]


@dataclass
class RunLog:
    idle: list[Sample] = field(default_factory=list)
    active: list[Sample] = field(default_factory=list)
    after: list[Sample] = field(default_factory=list)
    bench_start: float | None = None
    bench_end: float | None = None
    bench_rc: int | None = None
    vm_hwm_kb: int | None = None
    temps_before: dict[str, float] = field(default_factory=dict)
    temps_after: dict[str, float] = field(default_factory=dict)
    charging: dict[str, str] = field(default_factory=dict)
    cpufreq_khz: list[int] = field(default_factory=list)
    bench_pid: int | None = None


def parse_temp(value: str) -> float | None:
    try:
        v = float(value)
    except ValueError:
        return None
    return v / 1000.0 if abs(v) > 200 else v      # millidegrees (usual) or degrees


def parse_run_log(text: str) -> RunLog:
    log = RunLog()
    phase = "idle"
    cur: Sample | None = None
    cur_file: int | None = None
    temps_phase: dict[str, float] | None = None
    bucket = {"idle": log.idle, "active": log.active, "after": log.after}
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if line.startswith("@S "):
            try:
                cur = Sample(float(line[3:].split()[0]), {})
            except (ValueError, IndexError):
                cur = None
                continue
            bucket[phase].append(cur)
            cur_file = None
            temps_phase = None
        elif line.startswith("@F ") and cur is not None:
            cur_file = int(line[3:])
            cur.files[cur_file] = ""
        elif line.startswith("@H "):
            try:
                kb = int(line.split()[1])
                log.vm_hwm_kb = max(log.vm_hwm_kb or 0, kb)
            except (ValueError, IndexError):
                pass
        elif line.startswith("@B "):
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "start":
                log.bench_start, phase = float(parts[2]), "active"
                if len(parts) >= 4 and parts[3].isdigit():
                    log.bench_pid = int(parts[3])
            elif len(parts) >= 3 and parts[1] == "end":
                log.bench_end, phase = float(parts[2]), "after"
                if len(parts) >= 4:
                    log.bench_rc = int(parts[3]) if parts[3].lstrip("-").isdigit() else None
            cur = None
        elif line.startswith("@T "):
            temps_phase = log.temps_before if line[3:].strip() == "before" else log.temps_after
            cur = None
        elif line.startswith("@C "):
            parts = line[3:].split()
            if len(parts) == 2:
                log.charging[parts[0]] = parts[1]
        elif line.startswith("@Q "):
            log.cpufreq_khz = [int(v) for v in line[3:].split() if v.isdigit()]
        elif temps_phase is not None and line.strip():
            name, _, value = line.strip().rpartition(" ")
            t = parse_temp(value)
            if name and t is not None:
                temps_phase[name] = t
        elif cur is not None and cur_file is not None:
            cur.files[cur_file] += line + "\n"
    return log


def _num(text: str) -> float | None:
    try:
        return float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None


def _battery_scale(values: list[float], unit: str, kind: str) -> float:
    if unit in ("uA", "uV"):
        return 1e-6
    if unit in ("mA", "mV"):
        return 1e-3
    if unit in ("A", "V"):
        return 1.0
    med = statistics.median(abs(v) for v in values) if values else 0.0
    if kind == "current":            # a phone draws 0.05-6 A: uA values are >= 20000
        return 1e-6 if med >= 20000 else 1e-3
    return 1e-6 if med >= 1e5 else (1e-3 if med >= 1e3 else 1.0)


def _odpm_energy(text: str, rails: dict[str, float] | None = None) -> tuple[float | None, float]:
    """(t in s, total energy in J) of one sample's energy_value files; per-rail J into ``rails``."""
    t = None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("t="):
            try:
                t = float(line[2:]) / 1000.0 if t is None else t
            except ValueError:
                pass
        elif m := _ODPM_LINE.search(line):
            total += float(m[3]) * 1e-6
            if rails is not None:
                rails[m[2]] = rails.get(m[2], 0.0) + float(m[3]) * 1e-6
    return t, total


@dataclass
class PowerFigures:
    power_w: float | None = None
    samples: int = 0
    rails_w: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def power_over(source: PowerSource, samples: list[Sample]) -> PowerFigures:
    """Average power (W) over a list of samples of one source."""
    fig = PowerFigures(samples=len(samples))
    if not source.available or not samples:
        return fig
    if source.kind == "odpm":
        points = []
        for s in samples:
            ts, es, rails = [], 0.0, {}
            for i in range(len(source.files)):
                t, e = _odpm_energy(s.files.get(i, ""), rails)
                if t is not None:
                    ts.append(t)
                es += e
            if ts:
                points.append((min(ts), es, rails))
        if len(points) >= 2 and points[-1][0] > points[0][0]:
            dt = points[-1][0] - points[0][0]
            fig.power_w = (points[-1][1] - points[0][1]) / dt
            first, last = points[0][2], points[-1][2]
            fig.rails_w = {k: (last[k] - first[k]) / dt for k in last if k in first}
        else:
            fig.notes.append("fewer than two ODPM readings in the window")
        return fig
    if source.kind == "battery":
        cur = [_num(s.files.get(0, "")) for s in samples]
        vol = [_num(s.files.get(1, "")) for s in samples]
        pairs = [(c, v) for c, v in zip(cur, vol) if c is not None and v is not None]
        if not pairs:
            return fig
        ci = _battery_scale([c for c, _ in pairs], source.current_unit, "current")
        vi = _battery_scale([v for _, v in pairs], source.voltage_unit, "voltage")
        signs = {c > 0 for c, _ in pairs if c}
        if len(signs) > 1 and source.sign == "auto":
            fig.notes.append("battery current changed sign during the window (charging?)")
        if source.sign == "negative-discharge":
            draws = [-c * ci * v * vi for c, v in pairs]
        elif source.sign == "positive-discharge":
            draws = [c * ci * v * vi for c, v in pairs]
        else:
            draws = [abs(c) * ci * v * vi for c, v in pairs]
        fig.power_w = statistics.fmean(draws)
        return fig
    if source.kind == "hwmon":
        totals = []
        rail_vals: dict[str, list[float]] = {}
        use = [r for r in source.rails if r.get("total")] or source.rails
        for s in samples:
            total = 0.0
            ok = False
            for r in source.rails:
                if "power" in r:
                    p = _num(s.files.get(r["power"], ""))
                    w = p * 1e-6 if p is not None else None              # uW
                else:
                    v = _num(s.files.get(r.get("voltage", -1), ""))
                    i = _num(s.files.get(r.get("current", -1), ""))
                    w = v * 1e-3 * i * 1e-3 if v is not None and i is not None else None   # mV x mA
                if w is None:
                    continue
                rail_vals.setdefault(r["rail"], []).append(w)
                if r in use:
                    total += w
                    ok = True
            if ok:
                totals.append(total)
        if totals:
            fig.power_w = statistics.fmean(totals)
            fig.rails_w = {k: statistics.fmean(v) for k, v in rail_vals.items()}
        return fig
    return fig


def sampler_functions(source: PowerSource, interval_s: float) -> str:
    """Shell functions for the on-device script: ``sample`` prints one @S block."""
    cats = "".join(f"echo '@F {i}'; cat {quote(f)} 2>/dev/null; " for i, f in enumerate(source.files))
    return (f"sample() {{ read up _ < /proc/uptime; echo \"@S $up\"; {cats}}}\n"
            f"nap() {{ sleep {interval_s:g} 2>/dev/null || sleep 1; }}\n")


THERMAL = ("thermal() { echo \"@T $1\"; for z in /sys/class/thermal/thermal_zone*; do "
           "[ -r \"$z/temp\" ] && echo \"$(cat $z/type 2>/dev/null | tr ' ' _) $(cat $z/temp 2>/dev/null)\"; done; }\n")

CHARGING = ("charging() { for s in /sys/class/power_supply/*; do n=${s##*/}; "
            "[ -r \"$s/online\" ] && echo \"@C $n.online $(cat $s/online 2>/dev/null)\"; "
            "[ -r \"$s/status\" ] && echo \"@C $n.status $(cat $s/status 2>/dev/null | tr ' ' _)\"; done; }\n")

CPUFREQ = ("cpufreq() { echo \"@Q $(cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq 2>/dev/null "
           "| tr '\\n' ' ')\"; }\n")


def charging_warning(charging: dict[str, str]) -> str | None:
    """A warning when the device is on external power (battery current is then meaningless)."""
    online = [k.split(".")[0] for k, v in charging.items() if k.endswith(".online") and v.strip() == "1"
              and not k.startswith("battery")]
    status = next((v for k, v in charging.items() if k.endswith(".status") and k.startswith("battery")), "")
    if status.lower() == "charging" or (online and status.lower() not in ("discharging",)):
        return (f"the device is on external power ({', '.join(online) or 'charging'}; battery status "
                f"{status or 'unknown'}): battery current does not measure the SoC's draw; unplug it "
                "(ADB over Wi-Fi) or use a non-charging USB port / on-device power monitors")
    return None
