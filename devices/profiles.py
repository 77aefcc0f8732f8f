"""Device profiles: TOML data under ``profiles/devices`` plus the user's own folders.

A profile says what a device is (SoC, cores, Android API / NNAPI feature level), which
accelerators it has and which delegates/targets they run, and where to read power,
temperature and CPU frequency. ``--device pixel`` matches a name or alias; a connected
device is matched to a profile through its properties (``[match]``).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_isp._toml import read_toml
from edge_isp.devices.config import user_profile_dirs
from edge_isp.devices.errors import ProfileError, UnknownProfileError

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "profiles" / "devices"

# NNAPI feature level by Android API level (AOSP NNAPI HAL / AIDL versions).
_FEATURE_LEVEL = {27: 1, 28: 2, 29: 3, 30: 4, 31: 5, 32: 5, 33: 8, 34: 8, 35: 8, 36: 8}


def nnapi_feature_level(api_level: int | None) -> int | None:
    """The NNAPI feature level an Android API level ships with (mainline may add 6/7 to 31-32)."""
    if api_level is None or api_level < 27:
        return None
    return _FEATURE_LEVEL.get(api_level, 8)


@dataclass(frozen=True)
class Accelerator:
    name: str
    kind: str                              # cpu | gpu | npu | dsp
    model: str = ""
    nnapi_name: str = ""
    delegates: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    notes: str = ""


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    os: str
    description: str = ""
    vendor: str = ""
    aliases: tuple[str, ...] = ()
    match: dict[str, tuple[str, ...]] = field(default_factory=dict)
    soc: dict[str, Any] = field(default_factory=dict)
    android: dict[str, Any] = field(default_factory=dict)
    accelerators: tuple[Accelerator, ...] = ()
    power: dict[str, Any] = field(default_factory=dict)
    thermal: dict[str, Any] = field(default_factory=dict)
    cpufreq: dict[str, Any] = field(default_factory=dict)
    linux: dict[str, Any] = field(default_factory=dict)
    transports: tuple[str, ...] = ()
    fallback: bool = False
    source: str = ""

    @property
    def targets(self) -> list[str]:
        seen: list[str] = []
        for acc in self.accelerators:
            seen += [t for t in acc.targets if t not in seen]
        return seen

    def accelerator_for(self, target: str) -> Accelerator | None:
        for acc in self.accelerators:
            if target in acc.targets:
                return acc
        return None

    def score(self, props: dict[str, str]) -> int:
        """How many ``[match]`` keys the device's properties satisfy (0: not this profile)."""
        hits = 0
        for key, patterns in self.match.items():
            value = props.get(key, "").strip().lower()
            if value and any(fnmatch.fnmatchcase(value, p.lower()) for p in patterns):
                hits += 1
        return hits

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "os": self.os, "description": self.description, "vendor": self.vendor,
            "aliases": list(self.aliases), "soc": self.soc, "android": self.android,
            "accelerators": [a.__dict__ for a in self.accelerators], "targets": self.targets,
            "power_sources": list(self.power.get("sources", [])), "source": self.source,
        }


def _tuple(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ProfileError(f"{where} must be a string or a list of strings")


def load_profile(path: Path) -> DeviceProfile:
    path = Path(path)
    data = read_toml(path, "device profile", ProfileError, "fix or remove the profile file")
    where = f"device profile {path}"
    for key in ("name", "os"):
        if not isinstance(data.get(key), str):
            raise ProfileError(f"{where} needs a string '{key}'")
    if data["os"] not in ("android", "linux"):
        raise ProfileError(f"{where}: os must be 'android' or 'linux', not {data['os']!r}")
    accs = []
    for i, acc in enumerate(data.get("accelerators", [])):
        if "name" not in acc or "kind" not in acc:
            raise ProfileError(f"{where}: accelerators[{i}] needs 'name' and 'kind'")
        accs.append(Accelerator(
            name=acc["name"], kind=acc["kind"], model=acc.get("model", ""), nnapi_name=acc.get("nnapi_name", ""),
            delegates=_tuple(acc.get("delegates", []), f"{where}: delegates"),
            targets=_tuple(acc.get("targets", []), f"{where}: targets"), notes=acc.get("notes", "")))
    power = data.get("power", {})
    for src in power.get("sources", []):
        if src not in ("odpm", "battery", "hwmon"):
            raise ProfileError(f"{where}: unknown power source {src!r} (odpm, battery, hwmon)")
    return DeviceProfile(
        name=data["name"], os=data["os"], description=data.get("description", ""), vendor=data.get("vendor", ""),
        aliases=_tuple(data.get("aliases", []), f"{where}: aliases"),
        match={k: _tuple(v, f"{where}: match.{k}") for k, v in data.get("match", {}).items()},
        soc=data.get("soc", {}), android=data.get("android", {}), accelerators=tuple(accs), power=power,
        thermal=data.get("thermal", {}), cpufreq=data.get("cpufreq", {}), linux=data.get("linux", {}),
        transports=_tuple(data.get("transports", []), f"{where}: transports"),
        fallback=bool(data.get("fallback", False)), source=str(path),
    )


def list_profiles(extra_dirs: list[Path] | None = None) -> list[DeviceProfile]:
    """Built-in profiles, then the user's (same name: the user's wins)."""
    found: dict[str, DeviceProfile] = {}
    for folder in [BUILTIN_DIR, *user_profile_dirs(), *(extra_dirs or [])]:
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                prof = load_profile(path)
                found[prof.name] = prof
    return sorted(found.values(), key=lambda p: (p.fallback, p.name))


def profiles_named(name: str, profiles: list[DeviceProfile] | None = None) -> list[DeviceProfile]:
    """Profiles whose name or alias is ``name`` (an alias like 'pixel' may name several)."""
    profiles = profiles if profiles is not None else list_profiles()
    key = name.lower()
    exact = [p for p in profiles if p.name.lower() == key]
    return exact or [p for p in profiles if key in (a.lower() for a in p.aliases)]


def get_profile(name: str, profiles: list[DeviceProfile] | None = None) -> DeviceProfile:
    profiles = profiles if profiles is not None else list_profiles()
    hits = profiles_named(name, profiles)
    if not hits:
        names = [p.name for p in profiles] + [a for p in profiles for a in p.aliases]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownProfileError(f"no device profile is named {name!r}.{hint} See 'edge-isp devices --profiles'; "
                                  "add your own TOML under the edge-isp config folder 'devices/'.")
    return hits[0]


def match_profile(props: dict[str, str], os_name: str, profiles: list[DeviceProfile] | None = None,
                  among: list[DeviceProfile] | None = None) -> DeviceProfile | None:
    """The best-matching profile for a device's properties; the OS fallback if none matches."""
    profiles = profiles if profiles is not None else list_profiles()
    candidates = among if among is not None else profiles
    best = max(((p.score(props), p) for p in candidates if not p.fallback), key=lambda sp: sp[0], default=(0, None))
    if best[0] > 0:
        return best[1]
    if among is not None:
        return None
    return next((p for p in profiles if p.fallback and p.os == os_name), None)
