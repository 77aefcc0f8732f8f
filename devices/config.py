"""The user's edge-isp config folder: ADB keys and the cached benchmark-binary paths."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edge_isp._atomic import write_text_atomic

ENV_CONFIG = "EDGE_ISP_CONFIG_DIR"
ENV_PROFILES = "EDGE_ISP_DEVICE_PROFILES"   # extra profile folders, os.pathsep-separated


def config_dir() -> Path:
    """``$EDGE_ISP_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/edge-isp``, else ``~/.config/edge-isp``."""
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "edge-isp"


def adb_key_path() -> Path:
    """Private ADB key (``adbkey``, PEM) with ``adbkey.pub`` beside it; created on first use."""
    path = config_dir() / "adb" / "adbkey"
    if not path.is_file() or not path.with_name("adbkey.pub").is_file():
        from adb_shell.auth.keygen import keygen

        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        keygen(str(path))
        os.chmod(path, 0o600)
    return path


def _state_file() -> Path:
    return config_dir() / "devices.json"


def load_state() -> dict[str, Any]:
    try:
        return json.loads(_state_file().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def save_state(state: dict[str, Any]) -> None:
    write_text_atomic(_state_file(), json.dumps(state, indent=2, sort_keys=True) + "\n")


def remember_binary(abi: str, path: Path) -> None:
    """Remember where the user's benchmark_model for ``abi`` lives."""
    state = load_state()
    state.setdefault("benchmark_binaries", {})[abi] = str(Path(path).resolve())
    save_state(state)


def cached_binary(abi: str) -> Path | None:
    value = load_state().get("benchmark_binaries", {}).get(abi)
    return Path(value) if value else None


def user_profile_dirs() -> list[Path]:
    dirs = [config_dir() / "devices"]
    for part in os.environ.get(ENV_PROFILES, "").split(os.pathsep):
        if part:
            dirs.append(Path(part).expanduser())
    return dirs
