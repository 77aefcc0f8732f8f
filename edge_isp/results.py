"""The results store: every bench, device profile and eval run, one row per measurement.

SQLite in a user-chosen file (``EDGE_ISP_RESULTS`` or ``./edge-isp-results.sqlite``),
in WAL mode with a busy timeout, so several writers (two CI jobs, a bench and a device
profile) can append to the same file without corrupting it or losing rows.

Metric names are dotted and carry their unit: ``latency_ms.p90``, ``peak_rss_mb``,
``power_w``, ``psnr_db``, ``throughput_fps``.

    >>> store = ResultsStore("results.sqlite")
    >>> store.add(Measurement(model="pynet-v2-mobile", target="cpu-fp32", runtime="litert",
    ...                       device="local", kind="bench", metrics={"latency_ms.p90": 41.2}))
    >>> store.query(model="pynet-v2-mobile", latest=True)
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_isp.errors import InputError

ENV_VAR = "EDGE_ISP_RESULTS"
DEFAULT_FILENAME = "edge-isp-results.sqlite"
KINDS = ("bench", "profile", "eval", "estimate")
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0

# The identity of a result series: ``latest=True`` keeps the newest row of each.
SERIES_KEY = ("model", "target", "runtime", "device", "kind")


class ResultsStoreError(InputError):
    """The results file cannot be opened, read or written."""


def parse_since(text: str) -> str:
    """An ISO date or date-time (UTC unless it says otherwise) as the store writes times."""
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--since {text!r} is not an ISO date or date-time (for example 2026-11-01 "
                         f"or 2026-11-01T12:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass
class Measurement:
    """One measured run of one model artifact on one device.

    ``metrics`` holds numbers only (dotted names with units); ``extra`` holds anything
    else worth keeping (threads, machine, tool versions, input size, notes).
    """

    model: str
    target: str
    runtime: str
    device: str
    bundle_sha256: str | None = None
    commit: str | None = None
    created: str = field(default_factory=_now)   # ISO 8601, UTC
    kind: str = "bench"                      # "bench" | "profile" | "eval" | "estimate"
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    id: int | None = None                     # assigned by the store

    def __post_init__(self) -> None:
        if isinstance(self.created, _dt.datetime):
            when = self.created if self.created.tzinfo else self.created.replace(tzinfo=_dt.timezone.utc)
            self.created = when.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")
        if self.kind not in KINDS:
            raise InputError(f"measurement kind {self.kind!r} is not one of {', '.join(KINDS)}")
        clean: dict[str, float] = {}
        for name, value in self.metrics.items():
            try:
                clean[str(name)] = float(value)
            except (TypeError, ValueError):
                raise InputError(f"metric {name!r} = {value!r} is not a number; put non-numeric data in extra") from None
        self.metrics = clean

    @property
    def series(self) -> tuple[str, ...]:
        return tuple(str(getattr(self, k)) for k in SERIES_KEY)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def default_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_FILENAME)


def detect_commit(cwd: Path | None = None) -> str | None:
    """The commit under test: CI variables first, then ``git rev-parse HEAD``; None if unknown."""
    for var in ("EDGE_ISP_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_VCS_NUMBER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


_DDL = """
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    target TEXT NOT NULL,
    runtime TEXT NOT NULL,
    device TEXT NOT NULL,
    bundle_sha256 TEXT,
    git_commit TEXT,
    metrics TEXT NOT NULL,
    extra TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_series ON measurements (model, target, device, kind, created);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
"""

_INSERT_COLUMNS = "created, kind, model, target, runtime, device, bundle_sha256, git_commit, metrics, extra"
_COLUMNS = "id, " + _INSERT_COLUMNS


class ResultsStore:
    """Append-only SQLite store of :class:`Measurement` rows, safe for concurrent writers."""

    def __init__(self, path: Path | str | None = None, timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.timeout_s = timeout_s
        self._initialised = False

    # -- connection handling -------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ResultsStoreError(f"cannot open results store {self.path}: {exc}; "
                                    f"pass a writable path (--results or {ENV_VAR})") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            if not self._initialised:
                self._init(conn)
            yield conn
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise ResultsStoreError(f"{self.path} is not an edge-isp results store ({exc}); pass another "
                                        f"--results file, or move this one away to start a new store") from exc
            raise ResultsStoreError(f"results store {self.path} failed: {exc}") from exc
        finally:
            conn.close()

    def _init(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment of exclusive access; retry while another
        # process is creating the same file.
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript("BEGIN IMMEDIATE;" + _DDL + "COMMIT;")
                break
            except sqlite3.OperationalError as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":  # e.g. a network file system: still safe, just slower
            conn.execute("PRAGMA journal_mode = DELETE")
        self._initialised = True

    # -- writing ---------------------------------------------------------------------
    def add(self, m: Measurement) -> int:
        """Append one measurement; returns its row id (also set on ``m.id``)."""
        return self.add_many([m])[0]

    def add_many(self, items: Iterable[Measurement]) -> list[int]:
        items = list(items)
        ids: list[int] = []
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for m in items:
                    cur = conn.execute(
                        f"INSERT INTO measurements ({_INSERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (m.created, m.kind, m.model, m.target, m.runtime, m.device, m.bundle_sha256,
                         m.commit, json.dumps(m.metrics, sort_keys=True), json.dumps(m.extra, default=str)),
                    )
                    ids.append(int(cur.lastrowid))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        for m, i in zip(items, ids):
            m.id = i
        return ids

    # -- reading ---------------------------------------------------------------------
    def query(self, model: str | None = None, target: str | None = None, device: str | None = None,
              kind: str | None = None, latest: bool = False, runtime: str | None = None,
              commit: str | None = None, since: str | None = None, limit: int | None = None,
              ) -> list[Measurement]:
        """Measurements matching every given filter, oldest first.

        ``latest=True`` keeps only the newest row of each (model, target, runtime, device,
        kind) series. ``since`` is an ISO date/time (UTC); ``limit`` keeps the newest N.
        """
        where, args = [], []
        for column, value in (("model", model), ("target", target), ("device", device), ("kind", kind),
                              ("runtime", runtime), ("git_commit", commit)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since:
            where.append("created >= ?")
            args.append(parse_since(since))
        sql = f"SELECT {_COLUMNS} FROM measurements"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created, id"
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = [self._row(r) for r in conn.execute(sql, args)]
        if latest:
            newest: dict[tuple[str, ...], Measurement] = {}
            for m in rows:
                newest[m.series] = m
            rows = sorted(newest.values(), key=lambda m: (m.created, m.id or 0))
        if limit is not None:
            rows = rows[-limit:] if limit > 0 else []
        return rows

    def get(self, row_id: int) -> Measurement | None:
        if not self.path.exists():
            return None
        with self._connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM measurements WHERE id = ?", (row_id,)).fetchone()
        return self._row(row) if row else None

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    @staticmethod
    def _row(r: tuple) -> Measurement:
        return Measurement(
            id=r[0], created=r[1], kind=r[2], model=r[3], target=r[4], runtime=r[5], device=r[6],
            bundle_sha256=r[7], commit=r[8], metrics=json.loads(r[9]), extra=json.loads(r[10]),
        )


# -- export ----------------------------------------------------------------------------

def to_json(items: Iterable[Measurement]) -> str:
    return json.dumps([m.to_dict() for m in items], indent=2, default=str)


def to_csv(items: Iterable[Measurement]) -> str:
    """One row per measurement, one column per metric (the union over all rows)."""
    items = list(items)
    metric_names = sorted({k for m in items for k in m.metrics})
    fixed = ["id", "created", "kind", "model", "target", "runtime", "device", "bundle_sha256", "commit"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fixed + metric_names + ["extra"])
    for m in items:
        writer.writerow([getattr(m, f) if getattr(m, f) is not None else "" for f in fixed]
                        + [m.metrics.get(k, "") for k in metric_names]
                        + [json.dumps(m.extra, default=str, sort_keys=True)])
    return buf.getvalue()


def from_json(text: str) -> list[Measurement]:
    data = json.loads(text)
    if isinstance(data, dict):
        data = [data]
    return [Measurement.from_dict(d) for d in data]


__all__ = ["KINDS", "Measurement", "ResultsStore", "ResultsStoreError", "default_path", "detect_commit",
           "from_json", "to_csv", "to_json"]
