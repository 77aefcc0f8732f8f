"""Per-stage seconds and peak memory of a conversion (edge_isp.stage_clock): nested names, and a
toolchain worker's memory charged to the stage it ran in."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from edge_isp.stage_clock import StageClock


def test_nested_stages_and_a_child_process_peak():
    clock = StageClock()
    with clock.stage("build"):
        with clock.stage("worker"):
            # A child that holds ~300 MB: the worker stage (and build around it) must show it.
            subprocess.run([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
                           check=True)
        with clock.stage("local"):
            held = np.ones(64 * 2**20 // 8)            # 64 MiB in this process
            del held
    total_s, peak = clock.total()
    assert set(clock.seconds) == {"build", "build.worker", "build.local"}
    assert clock.peak_mb["build.worker"] >= 300 and clock.peak_mb["build"] >= clock.peak_mb["build.worker"]
    # The child finished inside "worker": a later stage is not charged for it.
    assert 64 <= clock.peak_mb["build.local"] < clock.peak_mb["build.worker"]
    assert peak >= clock.peak_mb["build"] and total_s >= clock.seconds["build"] >= clock.seconds["build.worker"]
