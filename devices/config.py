"""The user's edge-isp config folder: ADB keys and the cached benchmark-binary paths."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edge_isp._atomic import write_text_atomic
from edge_isp.devices.errors import DeviceAuthError

ENV_CONFIG = "EDGE_ISP_CONFIG_DIR"
ENV_PROFILES = "EDGE_ISP_DEVICE_PROFILES"   # extra profile folders, os.pathsep-separated


def config_dir() -> Path:
    """``$EDGE_ISP_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/edge-isp``, else ``~/.config/edge-isp``."""
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "edge-isp"


def adb_key_path() -> Path:
    """Private ADB key (``adbkey``, PEM) with ``adbkey.pub`` beside it; created on first use.

    An existing private key is never replaced (the phone authorised it): a missing
    ``adbkey.pub`` is rebuilt from it.
    """
    path = config_dir() / "adb" / "adbkey"
    if not path.is_file():
        _create_adb_key(path)
    pub = path.with_name("adbkey.pub")
    if not pub.is_file():
        write_text_atomic(pub, adb_public_key(path))
    return path


def _create_adb_key(path: Path) -> None:
    """A new key pair, linked into place so a key another process just made is kept."""
    import tempfile

    from adb_shell.auth.keygen import keygen

    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".keygen-") as tmp:
        new = Path(tmp) / "adbkey"
        keygen(str(new))
        os.chmod(new, 0o600)
        try:
            os.link(new, path)            # fails if a private key appeared meanwhile: keep that one
        except FileExistsError:
            return
        except OSError:                   # a file system without hard links
            if path.exists():
                return
            os.replace(new, path)
        os.replace(new.with_name("adbkey.pub"), path.with_name("adbkey.pub"))


def adb_public_key(private_key: Path) -> str:
    """``adbkey.pub`` for a private key: base64 of Android's RSAPublicKey struct + ' user@host'."""
    import base64
    import struct

    from adb_shell.auth.keygen import get_user_info
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise DeviceAuthError(f"the ADB key {private_key} cannot be read ({type(exc).__name__}); it was left as it "
                              "is: restore it, or move it away to create a new key (the phone will ask again)") from exc
    size = 256                                        # adb keys are RSA-2048: 64 words
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != size * 8:
        raise DeviceAuthError(f"the ADB key {private_key} is not a 2048-bit RSA key, the only kind adbd accepts; "
                              "it was left as it is: move it away to create a new key")
    numbers = key.public_key().public_numbers()
    r32 = 1 << 32
    n0inv = r32 - pow(numbers.n % r32, -1, r32)       # -1 / n[0] mod 2^32
    rr = pow(1 << (size * 8), 2, numbers.n)           # Montgomery R^2 mod n
    blob = struct.pack(f"<II{size}s{size}sI", size // 4, n0inv, numbers.n.to_bytes(size, "little"),
                       rr.to_bytes(size, "little"), numbers.e)
    return base64.b64encode(blob).decode() + get_user_info()


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
    """Remember where the user's benchmark_model for ``abi`` lives; call it only once it has run."""
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
