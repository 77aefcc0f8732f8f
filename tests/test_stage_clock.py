"""Per-stage seconds and peak memory of a conversion (edge_isp.stage_clock): nested names, and a
child process's memory (a toolchain worker's) charged to the stage it ran in."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_nested_stages_and_a_child_process_peak():
    # In a fresh interpreter, as a conversion runs (RUSAGE_CHILDREN starts at zero there).
    code = textwrap.dedent("""
        import subprocess, sys
        import numpy as np
        from edge_isp._resources import note_child_peak
        from edge_isp.stage_clock import StageClock

        clock = StageClock()
        with clock.stage("build"):
            with clock.stage("worker"):
                # A child that holds ~300 MB: the worker stage (and build around it) must show it.
                subprocess.run([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
                               check=True)
            with clock.stage("local"):
                held = np.ones(64 * 2**20 // 8)            # 64 MiB in this process
                del held
            with clock.stage("reported"):
                note_child_peak(900.0)                      # what a toolchain worker says in its answer
        total_s, peak = clock.total()
        assert set(clock.seconds) == {"build", "build.worker", "build.local", "build.reported"}
        assert clock.peak_mb["build.worker"] >= 300 and clock.peak_mb["build"] >= 900
        # The child finished inside "worker": a later stage is not charged for it.
        assert 64 <= clock.peak_mb["build.local"] < clock.peak_mb["build.worker"]
        assert clock.peak_mb["build.reported"] == 900.0 and peak >= 900
        assert total_s >= clock.seconds["build"] >= clock.seconds["build.worker"]
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
