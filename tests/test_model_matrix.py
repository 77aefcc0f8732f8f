"""The checked-in model matrix (issue #22): its format, what counts as worse, and CI's recomputation
of the cells it can afford (real conversions, compared with docs/model_matrix.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_isp import model_matrix as mm
from edge_isp.errors import InputError

TABLE = Path(__file__).resolve().parents[1] / "docs" / "model_matrix.json"
# The cells CI measures again: models that convert in about a minute per target here.
CI_CELLS = (("punet", "nnapi-int8"), ("punet", "openvino-int8"))


def _cell(**kw):
    base = dict(model="punet", target="nnapi-int8", ok=True, psnr_mean_db=58.0, psnr_worst_db=57.0, size_mb=5.9,
                time_s=60.0, peak_rss_mb=1500, delegated={"target": [90, 90], "pixel-8": [90, 90]})
    return mm.Cell(**{**base, **kw})


def test_what_counts_as_worse():
    table = mm.Matrix([_cell(), _cell(model="microisp", ok=False, reason="refused")])
    assert mm.regressions(table, [_cell(psnr_worst_db=56.0, time_s=500.0)]) == []     # within 1.5 dB; time is not judged
    found = mm.regressions(table, [_cell(psnr_worst_db=55.0)])
    assert len(found) == 1 and "worst PSNR 55.0 dB < table 57.0 dB" in found[0]
    found = mm.regressions(table, [_cell(delegated={"target": [89, 90], "pixel-8": [90, 90]})])
    assert found == ["punet -> nnapi-int8: target delegates 89 ops, table 90"]
    assert "now fails: boom" in mm.regressions(table, [_cell(ok=False, reason="boom")])[0]
    assert mm.regressions(table, [_cell(model="microisp", ok=False, reason="still")]) == []   # was failing already
    assert mm.regressions(table, [_cell(model="lw-isp")]) == []                              # not in the table


def test_table_round_trips_and_renders(tmp_path):
    table = mm.Matrix([_cell(), _cell(target="openvino-int8", delegated={"target": [70, 70]}),
                       _cell(model="pynet", ok=False, reason="a | b")], {"cpu": "test"})
    table.save(tmp_path / "m.json", tmp_path / "m.md")
    again = mm.Matrix.load(tmp_path / "m.json")
    assert again.to_dict() == table.to_dict()
    md = (tmp_path / "m.md").read_text()
    assert "## nnapi-int8" in md and "## openvino-int8" in md and "| punet | yes" in md
    assert "| pynet | no: a / b |" in md and "90/90" in md
    assert md.startswith("# Model matrix\n") and "at its default size" in md


def test_a_one_size_table_says_its_size(tmp_path):
    table = mm.Matrix([_cell(input_size="256x256")], input_size="256x256")
    table.save(tmp_path / "m.json", tmp_path / "m.md")
    assert mm.Matrix.load(tmp_path / "m.json").input_size == "256x256"
    md = (tmp_path / "m.md").read_text()
    assert md.startswith("# Model matrix at 256x256") and "--input-size 256x256" in md and "default size" not in md


def test_a_broken_table_says_what_to_do(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"schema": "other", "cells": []}))
    with pytest.raises(InputError, match="regenerate it with scripts/model_matrix.py"):
        mm.Matrix.load(bad)
    bad.write_text(json.dumps({"schema": mm.SCHEMA, "cells": [{"ok": True}]}))
    with pytest.raises(InputError, match="without model/target"):
        mm.Matrix.load(bad)


def test_checked_in_table_is_whole_and_says_what_it_lacks():
    from edge_isp.models import list_models

    table = mm.Matrix.load(TABLE)
    assert {c.model for c in table.cells} <= set(list_models()) and {c.target for c in table.cells} <= set(mm.MATRIX_TARGETS)
    missing = [f"{m} -> {t}" for m in list_models() for t in mm.MATRIX_TARGETS if table.get(m, t) is None]
    markdown = (TABLE.parent / "MODEL_MATRIX.md").read_text()
    assert all(name in markdown for name in missing)          # cells not measured are listed, not hidden
    assert "internal error" not in json.dumps(table.to_dict())  # a broken run is measured again, not checked in
    for cell in table.cells:
        assert cell.ok or cell.reason, cell           # a failure always says why
        if cell.ok:
            assert cell.psnr_worst_db <= cell.psnr_mean_db and cell.delegated.get(mm.TARGET_LEVEL)


@pytest.mark.slow
@pytest.mark.parametrize("model,target", CI_CELLS)
def test_ci_cells_are_not_worse_than_the_table(model, target):
    table = mm.Matrix.load(TABLE)
    assert table.get(model, target) is not None and table.get(model, target).ok
    fresh = mm.measure_cell(model, target)
    assert fresh.ok, fresh.reason
    assert mm.regressions(table, [fresh]) == []


def test_a_cell_follows_the_advice_of_its_failure_once(monkeypatch):
    calls = []

    def fake_convert(model, target, input_size, extra_args):
        calls.append(tuple(extra_args))
        if "--keep-float" in extra_args:
            return _cell(model=model, target=target)
        return mm.Cell(model, target, False, reason="below the bar; keep the normalisation layers in float with "
                                                      "--keep-float norm; or lower the bar knowingly with --min-psnr")

    monkeypatch.setattr(mm, "_convert_cell", fake_convert)
    cell = mm.measure_cell("pynet-v2-mobile", "nnapi-int8")
    assert calls == [(), ("--keep-float", "norm")]
    assert cell.ok and cell.options == "--keep-float norm" and cell.note.startswith("plain: below the bar")
    assert "| yes (random, --keep-float norm) |" in mm.render_markdown(mm.Matrix([replace_weights(cell)]))

    calls.clear()
    monkeypatch.setattr(mm, "_convert_cell", lambda *a: calls.append(a) or mm.Cell("punet", "cpu-int8", False, reason="boom"))
    assert not mm.measure_cell("punet", "cpu-int8").ok and len(calls) == 1      # no advice: no retry


def replace_weights(cell):
    from dataclasses import replace

    return replace(cell, weights="random")


def test_resuming_follows_the_advice_of_an_old_failure_without_redoing_it(monkeypatch):
    calls = []
    monkeypatch.setattr(mm, "_convert_cell", lambda model, target, size, args: calls.append(args) or _cell(
        model=model, target=target))
    old = mm.Cell("pynet-v2-mobile", "nnapi-int8", False, reason="26 dB; keep the normalisation layers in float "
                                                                  "with --keep-float norm")
    table = mm.Matrix([old, _cell()])
    saved = []
    mm.build(["pynet-v2-mobile", "punet"], ["nnapi-int8"], table, save=saved.append, input_size="256x256")
    assert "Advice not followed yet" in mm.render_markdown(mm.Matrix([old]))
    assert calls == [("--keep-float", "norm")] and len(saved) == 1     # punet's cell was whole: untouched
    assert table.get("pynet-v2-mobile", "nnapi-int8").options == "--keep-float norm"
