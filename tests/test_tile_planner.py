"""Tile sizes from a memory budget (--max-memory): measured working memory, largest window that fits."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edge_isp.errors import InputError, UsageError  # noqa: E402
from edge_isp.tile_planner import MemoryModel, choose_window, measure_memory, parse_memory  # noqa: E402


@pytest.mark.parametrize("text,mb", [("512MB", 512), ("1.5GB", 1536), ("800", 800), ("2g", 2048), ("64 MiB", 64)])
def test_memory_sizes_parse(text, mb):
    assert parse_memory(text) == pytest.approx(mb)


@pytest.mark.parametrize("text", ["lots", "-5MB", "0", "12XB"])
def test_bad_memory_sizes_are_usage_errors(text):
    with pytest.raises(UsageError, match="512MB"):
        parse_memory(text)


def test_measured_memory_predicts_a_larger_window():
    from edge_isp.models.pretrained import load_default
    from edge_isp.tile_planner import _live_bytes_meter

    net = load_default().eval()
    model = measure_memory(net)
    assert model.mb_per_kpx > 0 and len(model.probes) == 2
    meter = _live_bytes_meter()
    with torch.no_grad(), meter:
        net(torch.rand(1, 4, 432, 432))
    measured = meter.peak / 2**20
    assert abs(model.predict_mb((432, 432)) - measured) < 0.15 * measured   # extrapolated 2.25x the largest probe


def test_the_largest_aligned_window_within_budget_is_chosen():
    model = MemoryModel(10.0, 1.0, ((1000, 11.0), (2000, 12.0)))     # 10 MB + 1 MB per kpx
    choice = choose_window(200.0, model, align=36, least=180)
    side = choice.window[0]
    assert side % 36 == 0 and model.predict_mb((side, side)) <= 200 < model.predict_mb((side + 36, side + 36))
    assert "--max-memory 200 MB" in choice.reason
    with pytest.raises(InputError, match="raise the budget"):
        choose_window(20.0, model, align=36, least=180)


def test_convert_takes_a_budget_or_a_size_not_both(tmp_path):
    from edge_isp.converters.pipeline import ConvertOptions, convert

    with pytest.raises(UsageError, match="not both"):
        convert(ConvertOptions(target="onnx-fp32", input_size=(432, 432), max_memory_mb=300, output=tmp_path / "b"))
    with pytest.raises(InputError, match="--max-memory plans the window of two-pass"):
        convert(ConvertOptions(target="onnx-fp32", tiling="blended", max_memory_mb=300, output=tmp_path / "b"))
    assert not (tmp_path / "b").exists()


def test_process_plans_the_two_pass_block_from_the_budget():
    from edge_isp.process import load_runner, plan_block

    runner = load_runner()
    small, why_small = plan_block(runner, 100.0)
    large, _ = plan_block(runner, 400.0)
    assert 0 < small < large and "--max-memory 100 MB" in why_small


@pytest.mark.slow
def test_convert_chooses_the_two_pass_window_from_the_budget(tmp_path):
    from edge_isp.converters.pipeline import ConvertOptions, convert

    result = convert(ConvertOptions(target="onnx-fp32", max_memory_mb=60, verify_samples=1, output=tmp_path / "b"))
    t = result.manifest["tiling"]
    side = t["window_packed"][0]
    assert "--max-memory 60 MB" in t["window_note"] and side % t["align_packed"] == 0
    assert side < 432                     # smaller than the default window: the budget decided
    assert result.manifest["input"]["mosaic_hw"] == [2 * side, 2 * side]
