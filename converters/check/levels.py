"""Which level the delegate compares op thresholds against (Android API, NNAPI feature level,
named accelerator), and what a device profile says about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_isp.converters.support import FEATURE_LEVELS, SupportTable, SupportTableError, level_name, parse_level
from edge_isp.errors import InputError

# ----------------------------------------------------------------------------- levels

@dataclass(frozen=True)
class LevelContext:
    level: int | None          # what the table's thresholds are compared against
    label: str
    accelerator: str | None
    notes: tuple[str, ...] = ()


def _sdk_to_runtime_level(sdk: int) -> int:
    """The NNAPI runtime feature level an Android release ships (FL5 on 12/12L, FL8 from 13)."""
    if sdk <= 31:
        return sdk
    return FEATURE_LEVELS[5] if sdk == 32 else FEATURE_LEVELS[8]


def resolve_level(table: SupportTable, api_level: int | str | None, accelerator: str | None,
                  default_api_level: int | None, device: dict[str, Any] | None = None) -> LevelContext:
    """The level the delegate compares op thresholds against, as ``nnapi_delegate.cc`` does."""
    notes: list[str] = []
    if device:
        accelerator = accelerator or device.get("accelerator")
        if api_level is None:
            api_level = device.get("feature_level_code") or device.get("api_level")
    if table.levels == "none":
        if api_level is not None and not device:
            notes.append(f"--api-level does not apply to the {table.title}; ignored")
        return LevelContext(None, "-", accelerator, tuple(notes))
    raw = api_level if api_level is not None else default_api_level
    if raw is None:
        raise InputError(f"the {table.title} check needs an API level: pass --api-level (e.g. 30) or --device")
    try:
        value = parse_level(raw, "--api-level")
    except SupportTableError as exc:
        raise InputError(str(exc)) from None
    high = table.delegate.accelerator_only_from
    if value in FEATURE_LEVELS.values() and high is not None and value >= high:
        # A feature level only exists on the target-device path.
        if not accelerator:
            accelerator = "(any named accelerator)"
            notes.append(f"{level_name(value)} is the runtime feature level the delegate compares against only when "
                         "an accelerator is named (nnapi_accelerator_name); assumed named")
        return LevelContext(value, level_name(value), accelerator, tuple(notes))
    if accelerator:
        runtime = _sdk_to_runtime_level(value)
        if device and device.get("feature_level_code"):
            runtime = min(runtime, int(device["feature_level_code"]))
        label = f"API {value}" + (f" (target-device path: {level_name(runtime)})" if runtime != value else "")
        if runtime != value:
            notes.append(f"with accelerator {accelerator} the delegate compares against the runtime feature level "
                         f"{level_name(runtime)}, assumed to be the one Android API {value} ships; a driver may "
                         "report less")
        return LevelContext(runtime, label, accelerator, tuple(notes))
    if high is not None and value < high:
        notes.append("no accelerator named: feature-level-6/7 ops (MIRROR_PAD, BATCH_MATMUL, ...) are compared "
                     f"against the SDK level {value} and refused; name one with --accelerator")
    if value >= 29:
        notes.append("with no accelerator named and only the nnapi-reference CPU device on the phone, the delegate "
                     "delegates nothing (disallow_nnapi_cpu=true)")
    return LevelContext(value, f"API {value}", None, tuple(notes))


# ----------------------------------------------------------------------------- devices

def find_device(name: str, target: str, profiles_dir: Path | None = None) -> dict[str, Any]:
    """What the checker needs from a device profile (``profiles/devices/*.toml``).

    Profiles are loaded by ``edge_isp.devices.profiles`` (built-in, the user's config
    folder, and ``profiles_dir/devices`` when given). The API level is the profile's launch
    API (the lowest it runs), the feature level its ``nnapi_feature_level``, the accelerator
    the ``nnapi_name`` of the accelerator that runs ``target``.
    """
    from edge_isp.devices.profiles import get_profile, list_profiles

    extra = [Path(profiles_dir) / "devices"] if profiles_dir is not None else []
    prof = get_profile(name, list_profiles(extra))
    android = prof.android or {}
    levels = android.get("api_levels") or []
    api = android.get("launch_api", min(levels) if levels else None)
    acc = prof.accelerator_for(target)
    accelerator = acc.nnapi_name if acc is not None and acc.nnapi_name else None
    fl = android.get("nnapi_feature_level")
    fl_code = FEATURE_LEVELS.get(int(fl)) if fl is not None else None
    if fl_code is not None and fl_code >= FEATURE_LEVELS[6] and not accelerator:
        fl_code = None  # feature levels 6+ are unreachable without a named accelerator
    return {"name": prof.name, "path": prof.source, "api_level": int(api) if api is not None else None,
            "accelerator": accelerator, "feature_level_code": fl_code}
