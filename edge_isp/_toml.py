"""One reader for every TOML file edge-isp takes from a user (budgets, profiles, op tables)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edge_isp.errors import InputError


def read_toml(path: Path, what: str, error: type[InputError] = InputError, fix: str = "fix the file") -> dict[str, Any]:
    """The file as a dict, or ``error`` with one line naming ``what`` the file is and why."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise error(f"cannot read {what} {path} ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not a UTF-8 text file (byte {exc.start}); {fix}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML ({exc}); {fix}") from exc
