"""Evaluation: a training checkpoint, a converted bundle and the classical ISP on held-out pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_isp.errors import InputError  # noqa: E402
from edge_isp.training import TrainConfig, train  # noqa: E402
from edge_isp.training.evaluate import (  # noqa: E402
    evaluate,
    evaluation_pairs,
    load_subject,
    record,
    score,
)

MODEL = "pynet-v2-mobile-nonorm"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("evalrun")
    cfg = TrainConfig(model=MODEL, model_options={"padding": "zero"}, out=str(out), steps=2, batch_size=2,
                      crop=64, val_every=100, val_draws=1, val_size=64, threads=1, device="cpu")
    train(cfg, resume=False)
    return out / "best.pt"


@pytest.fixture(scope="module")
def pairs():
    return evaluation_pairs("synthetic", draws=2, max_side=96)


def test_score_is_perfect_for_identical_images():
    img = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    s = score("x", img, img)
    assert s.psnr_db == float("inf") or s.psnr_db > 100
    assert s.ssim == pytest.approx(1.0) and s.ms_ssim is None  # too small for MS-SSIM


def test_evaluate_checkpoint_and_classical(checkpoint, pairs):
    sub = load_subject(str(checkpoint))
    assert sub.kind == "checkpoint" and sub.model == MODEL
    rep = evaluate(sub, pairs, name="ckpt", dataset="t", use_lpips=False)
    assert len(rep.images) == 2 and set(rep.mean) >= {"psnr_db", "ssim"}
    assert all(np.isfinite(s.psnr_db) for s in rep.images)
    base = evaluate(load_subject("classical"), pairs, name="classical", dataset="t", use_lpips=False)
    assert base.kind == "classical" and 8 < base.mean["psnr_db"] < 40
    d = rep.to_dict()
    assert d["mean"]["psnr_db"] == pytest.approx(rep.mean["psnr_db"]) and len(d["images"]) == 2


def test_evaluate_converted_bundle_matches_checkpoint(checkpoint, pairs, tmp_path):
    pytest.importorskip("onnxruntime")
    from edge_isp.converters.pipeline import ConvertOptions, convert

    bundle = tmp_path / "bundle"
    convert(ConvertOptions(tiling="blended", model=MODEL, target="onnx-fp32", model_options={"padding": "zero"},
                           weights=checkpoint, input_size=(64, 64), verify_samples=1, calib_samples=1,
                           output=bundle))
    sub = load_subject(str(bundle))
    assert sub.kind == "bundle" and sub.bundle_sha256
    rep = evaluate(sub, pairs, name="bundle", dataset="t", use_lpips=False)
    ref = evaluate(load_subject(str(checkpoint)), pairs, name="ckpt", dataset="t", use_lpips=False)
    # Tiled fp32 ONNX vs whole-image PyTorch: the same model, so nearly the same scores
    # (tiles only differ near their seams).
    assert abs(rep.mean["psnr_db"] - ref.mean["psnr_db"]) < 1.0


def test_results_go_to_the_store(checkpoint, pairs, tmp_path):
    pytest.importorskip("edge_isp.results")
    from edge_isp.results import ResultsStore

    rep = evaluate(load_subject(str(checkpoint)), pairs, name="ckpt", dataset="t", use_lpips=False)
    row = record(rep, tmp_path / "r.sqlite")
    got = ResultsStore(tmp_path / "r.sqlite").get(row)
    assert got.kind == "eval" and got.model == MODEL
    assert got.metrics["psnr_db"] == pytest.approx(rep.mean["psnr_db"])


def test_eval_cli_json(checkpoint, tmp_path):
    from typer.testing import CliRunner

    from edge_isp.cli import app

    res = CliRunner().invoke(app, ["eval", str(checkpoint), "--draws", "1", "--limit", "1", "--json",
                                   "--store", str(tmp_path / "s.sqlite"), "--no-lpips"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    kinds = [r["kind"] for r in data["reports"]]
    assert kinds == ["checkpoint", "classical"]
    assert all("psnr_db" in r["mean"] for r in data["reports"])


def test_unknown_subject_fails_clearly():
    with pytest.raises(InputError, match="no such"):
        load_subject("./nope/bundle")


def test_default_model_ships_loads_and_beats_the_classical_isp():
    from edge_isp.models.pretrained import DEFAULT, default_card, default_weights_path, load_default

    path = default_weights_path()
    assert path.is_file() and path.stat().st_size < 5_000_000
    assert "held-out" in default_card().lower()
    net = load_default()
    assert not net.training
    with torch.no_grad():
        y = net(torch.rand(1, 4, 32, 32))
    assert y.shape == (1, 3, 64, 64)
    pairs = evaluation_pairs("synthetic", draws=2, max_side=160)
    model = evaluate(load_subject("default"), pairs, name="default", dataset="t", use_lpips=False)
    base = evaluate(load_subject("classical"), pairs, name="classical", dataset="t", use_lpips=False)
    assert model.mean["psnr_db"] > base.mean["psnr_db"] + 3
    assert DEFAULT.name == "pynet-v2-mobile-nonorm" and DEFAULT.options == {"padding": "zero"}
