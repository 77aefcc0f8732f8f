"""Seconds and peak memory per stage of a long job (a conversion), nested stages included.

A stage's peak is the most resident memory the process held while it ran, or the peak of
a child process that finished inside it: a toolchain worker reports its own peak in its
answer; other children are seen through RUSAGE_CHILDREN (which only shows a child larger
than any before it). A conversion that runs its converter in another environment is
charged for that process too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from edge_isp._resources import children_peak_rss_mb, peak_rss_mb, reset_peak_rss, take_child_peak


@dataclass
class StageClock:
    seconds: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    _open: list[str] = field(default_factory=list)
    _children_before: float = 0.0
    _whole: float = 0.0

    def __post_init__(self) -> None:
        reset_peak_rss()
        self._children_before = children_peak_rss_mb()
        self._started = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time ``name``; inside another stage it is recorded as ``outer.name``."""
        full = ".".join([*self._open[-1:], name])
        self._fold()
        self._open.append(full)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._fold()
            self._open.pop()
            self.seconds[full] = round(time.perf_counter() - t0, 3)

    def begin(self, name: str) -> Callable[[], None]:
        """``stage`` for code that cannot indent: call the returned function when it ends."""
        cm = self.stage(name)
        cm.__enter__()
        return lambda: cm.__exit__(None, None, None)

    def _fold(self) -> None:
        """Charge the memory peak since the last reading to every open stage, then reset."""
        own = peak_rss_mb()
        children = children_peak_rss_mb()
        # RUSAGE_CHILDREN only grows: a new maximum is a child that finished in this interval.
        child = max(children if children > self._children_before else 0.0, take_child_peak())
        self._children_before = max(self._children_before, children)
        reading = round(max(own, child), 1)
        for name in self._open:
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), reading)
        self._whole = max(self._whole, reading)
        reset_peak_rss()

    def total(self) -> tuple[float, float]:
        """(seconds since the clock started, peak MiB over the whole job)."""
        self._fold()
        return round(time.perf_counter() - self._started, 3), self._whole
