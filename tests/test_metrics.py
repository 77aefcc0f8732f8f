"""Image-quality metrics against trusted implementations, torch vs numpy, gradients, errors.

References: scikit-image (PSNR, SSIM), pytorch_msssim (MS-SSIM) and, when
TensorFlow is installed (a slow test), tf.image.ssim_multiscale (the
reference evaluation's MS-SSIM, which also fixes the odd-size downsampling).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge_isp import metrics, metrics_torch
from edge_isp.errors import EdgeIspError, InputError

torch = pytest.importorskip("torch")
skimage_metrics = pytest.importorskip("skimage.metrics")

SK_SSIM_OPTIONS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():  # type: ignore[no-untyped-def]
    """These tensors are tiny: one thread is faster, and immune to a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- helpers


def _scene(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth, textured HWC image in [0, 1] (structure at several scales)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    planes = []
    for c in range(channels):
        fx, fy = rng.uniform(2, 12, size=2)
        plane = 0.5 + 0.3 * np.sin(2 * np.pi * fx * xx + c) * np.cos(2 * np.pi * fy * yy)
        plane += 0.1 * rng.standard_normal((height, width))
        planes.append(plane)
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0)


def _distort(image: np.ndarray, kind: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        out = image + 0.05 * rng.standard_normal(image.shape)
    elif kind == "blur":
        out = (image + np.roll(image, 1, axis=0) + np.roll(image, 1, axis=1)) / 3.0
    elif kind == "gain":
        out = 0.8 * image + 0.1
    elif kind == "unrelated":
        out = rng.random(image.shape)
    else:  # pragma: no cover - test bug
        raise AssertionError(kind)
    return np.clip(out, 0.0, 1.0)


def _nchw(array: np.ndarray) -> torch.Tensor:
    """HWC or NHWC numpy -> NCHW torch (float64)."""
    if array.ndim == 3:
        array = array[None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def _sk_ssim(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    return float(
        skimage_metrics.structural_similarity(
            reference, test, data_range=data_range, channel_axis=-1, **SK_SSIM_OPTIONS
        )
    )


DISTORTIONS = ["noise", "blur", "gain", "unrelated"]


# ------------------------------------------------------------------------- constants


def test_constants_and_window() -> None:
    assert metrics.MS_SSIM_WEIGHTS == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    assert (metrics.WINDOW_SIZE, metrics.WINDOW_SIGMA) == (11, 1.5)
    assert (metrics.K1, metrics.K2) == (0.01, 0.03)
    assert metrics.MS_SSIM_MIN_SIDE == 161
    window = metrics.gaussian_window()
    assert window.shape == (11,)
    assert window.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(window, window[::-1])
    assert not window.flags.writeable


def test_module_does_not_import_torch() -> None:
    code = "import sys, edge_isp.metrics; sys.exit('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or "edge_isp.metrics imported torch"


# ------------------------------------------------------------------------------ PSNR


@pytest.mark.parametrize("kind", DISTORTIONS)
def test_psnr_matches_skimage(kind: str) -> None:
    reference = _scene(40, 56)
    test = _distort(reference, kind)
    expected = skimage_metrics.peak_signal_noise_ratio(reference, test, data_range=1.0)
    assert metrics.psnr(reference, test) == pytest.approx(expected, abs=1e-9)


def test_psnr_data_range_255() -> None:
    reference = _scene(24, 24) * 255.0
    test = _distort(reference / 255.0, "noise") * 255.0
    expected = skimage_metrics.peak_signal_noise_ratio(reference, test, data_range=255.0)
    assert metrics.psnr(reference, test, data_range=255) == pytest.approx(expected, abs=1e-9)


def test_psnr_is_per_image_for_batches() -> None:
    reference = np.stack([_scene(20, 24, seed=s) for s in range(3)])
    test = np.stack([_distort(reference[i], k) for i, k in enumerate(DISTORTIONS[:3])])
    values = metrics.psnr(reference, test)
    assert isinstance(values, np.ndarray) and values.shape == (3,)
    for i in range(3):
        expected = skimage_metrics.peak_signal_noise_ratio(reference[i], test[i], data_range=1)
        assert values[i] == pytest.approx(expected, abs=1e-9)


def test_psnr_identical_is_inf() -> None:
    image = _scene(16, 16)
    assert metrics.psnr(image, image.copy()) == float("inf")
    assert isinstance(metrics.psnr(image, image), float)
    assert torch.isinf(metrics.psnr_torch(_nchw(image), _nchw(image))).all()


# ------------------------------------------------------------------------------ SSIM


@pytest.mark.parametrize("kind", DISTORTIONS)
def test_ssim_matches_skimage(kind: str) -> None:
    reference = _scene(48, 64)
    test = _distort(reference, kind)
    assert metrics.ssim(reference, test) == pytest.approx(_sk_ssim(reference, test), abs=1e-6)


def test_ssim_matches_skimage_odd_size_single_channel_and_float32() -> None:
    reference = _scene(23, 37, channels=1).astype(np.float32)
    test = _distort(reference, "noise").astype(np.float32)
    expected = skimage_metrics.structural_similarity(
        reference[..., 0].astype(np.float64),
        test[..., 0].astype(np.float64),
        data_range=1.0,
        **SK_SSIM_OPTIONS,
    )
    assert metrics.ssim(reference, test) == pytest.approx(expected, abs=1e-6)


def test_ssim_data_range_255() -> None:
    reference = _scene(32, 32) * 255.0
    test = _distort(reference / 255.0, "blur") * 255.0
    expected = _sk_ssim(reference, test, data_range=255.0)
    assert metrics.ssim(reference, test, data_range=255.0) == pytest.approx(expected, abs=1e-6)


def test_ssim_is_per_image_for_batches() -> None:
    reference = np.stack([_scene(30, 30, seed=s) for s in range(2)])
    test = np.stack([_distort(reference[0], "noise"), _distort(reference[1], "gain")])
    values = metrics.ssim(reference, test)
    assert isinstance(values, np.ndarray) and values.shape == (2,)
    for i in range(2):
        assert values[i] == pytest.approx(_sk_ssim(reference[i], test[i]), abs=1e-6)


def test_ssim_identical_is_one() -> None:
    image = _scene(16, 20)
    assert metrics.ssim(image, image) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------- MS-SSIM

# Sides that are multiples of 16 stay even at every scale, where every implementation
# downsamples the same way.
MS_SHAPE = (176, 192)


@pytest.fixture(scope="module")
def ms_pair() -> tuple[np.ndarray, np.ndarray]:
    reference = np.stack([_scene(*MS_SHAPE, seed=s) for s in range(3)])
    test = np.stack([_distort(reference[i], k) for i, k in enumerate(["noise", "blur", "gain"])])
    return reference, test


def test_ms_ssim_matches_pytorch_msssim(ms_pair: tuple[np.ndarray, np.ndarray]) -> None:
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    reference, test = ms_pair
    expected = pytorch_msssim.ms_ssim(
        _nchw(reference), _nchw(test), data_range=1.0, size_average=False
    ).numpy()
    np.testing.assert_allclose(metrics.ms_ssim(reference, test), expected, atol=1e-4)
    got_torch = metrics.ms_ssim_torch(_nchw(reference), _nchw(test)).numpy()
    np.testing.assert_allclose(got_torch, expected, atol=1e-4)
    # Near 1 as well, where a verification step reads it.
    near = np.clip(reference + 1e-3, 0, 1)
    expected_near = pytorch_msssim.ms_ssim(_nchw(reference), _nchw(near), data_range=1.0)
    assert np.mean(metrics.ms_ssim(reference, near)) == pytest.approx(
        float(expected_near), abs=1e-4
    )


def test_ssim_torch_matches_pytorch_msssim_ssim(ms_pair: tuple[np.ndarray, np.ndarray]) -> None:
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    reference, test = ms_pair
    expected = pytorch_msssim.ssim(
        _nchw(reference).float(), _nchw(test).float(), data_range=1.0, size_average=False
    ).numpy()
    got = metrics.ssim_torch(_nchw(reference).float(), _nchw(test).float()).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_ms_ssim_hwc_returns_float_and_identical_is_one() -> None:
    image = _scene(161, 161)
    value = metrics.ms_ssim(image, image)
    assert isinstance(value, float)
    assert value == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_orders_distortions() -> None:
    reference = _scene(*MS_SHAPE)
    mild = metrics.ms_ssim(reference, np.clip(reference + 0.01, 0, 1))
    strong = metrics.ms_ssim(reference, _distort(reference, "noise"))
    unrelated = metrics.ms_ssim(reference, _distort(reference, "unrelated"))
    assert 1.0 > mild > strong > unrelated >= 0.0


def test_odd_sides_repeat_last_row_and_column_before_pooling() -> None:
    image = np.arange(3 * 5, dtype=np.float64).reshape(1, 3, 5, 1)
    pooled = metrics._downsample2_np(image)
    padded = np.pad(image, ((0, 0), (0, 1), (0, 1), (0, 0)), mode="edge")
    expected = padded.reshape(1, 2, 2, 3, 2, 1).mean(axis=(2, 4))
    np.testing.assert_array_equal(pooled, expected)
    pooled_torch = metrics_torch._downsample2_torch(_nchw(image))
    np.testing.assert_array_equal(pooled_torch.numpy().transpose(0, 2, 3, 1), expected)


@pytest.mark.slow  # imports TensorFlow (~5 s)
def test_ms_ssim_matches_tensorflow_on_odd_sizes() -> None:
    tf = pytest.importorskip("tensorflow")
    for shape in [(163, 171), (200, 201)]:
        reference = _scene(*shape)
        test = _distort(reference, "noise")
        expected = tf.image.ssim_multiscale(
            tf.constant(reference[None]), tf.constant(test[None]), max_val=1.0
        ).numpy()[0]
        assert metrics.ms_ssim(reference, test) == pytest.approx(float(expected), abs=1e-4)


# ---------------------------------------------------------------- torch vs numpy


@pytest.mark.parametrize("shape", [(2, 23, 31, 3), (1, 12, 11, 1)])
def test_torch_matches_numpy_psnr_ssim(shape: tuple[int, ...]) -> None:
    n, h, w, c = shape
    reference = np.stack([_scene(h, w, channels=c, seed=s) for s in range(n)])
    test = _distort(reference, "noise")
    for numpy_fn, torch_fn in [
        (metrics.psnr, metrics.psnr_torch),
        (metrics.ssim, metrics.ssim_torch),
    ]:
        expected = numpy_fn(reference, test)
        got64 = torch_fn(_nchw(reference), _nchw(test))
        np.testing.assert_allclose(got64.numpy(), expected, atol=1e-10)
        got32 = torch_fn(_nchw(reference).float(), _nchw(test).float())
        assert got32.dtype == torch.float32
        np.testing.assert_allclose(got32.numpy(), expected, atol=1e-4)


def test_torch_matches_numpy_ms_ssim_odd_size() -> None:
    reference = _scene(163, 170)
    test = _distort(reference, "blur")
    expected = metrics.ms_ssim(reference, test)
    got = metrics.ms_ssim_torch(_nchw(reference), _nchw(test))
    assert float(got[0]) == pytest.approx(expected, abs=1e-10)


def test_torch_half_precision_is_computed_in_float32() -> None:
    reference = _scene(32, 32)
    test = _distort(reference, "noise")
    got = metrics.ssim_torch(_nchw(reference).half(), _nchw(test).half())
    assert got.dtype == torch.float32
    assert float(got[0]) == pytest.approx(metrics.ssim(reference, test), abs=2e-3)


# ------------------------------------------------------------------------- gradients


def test_ssim_gradcheck() -> None:
    reference = _nchw(_scene(12, 13, channels=2))
    test = _nchw(_distort(_scene(12, 13, channels=2), "noise")).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: metrics.ssim_torch(reference, t, check_finite=False), (test,), fast_mode=True
    )


def test_ms_ssim_gradient_matches_finite_difference() -> None:
    reference = _nchw(_scene(161, 165, channels=1))
    test = _nchw(_distort(_scene(161, 165, channels=1), "noise")).requires_grad_(True)
    value = metrics.ms_ssim_torch(reference, test).sum()
    (grad,) = torch.autograd.grad(value, test)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(test.shape, generator=generator, dtype=test.dtype)
    eps = 1e-6
    with torch.no_grad():
        plus = metrics.ms_ssim_torch(reference, test + eps * direction).sum()
        minus = metrics.ms_ssim_torch(reference, test - eps * direction).sum()
    numeric = float((plus - minus) / (2 * eps))
    analytic = float((grad * direction).sum())
    assert analytic == pytest.approx(numeric, rel=1e-5)


@pytest.mark.parametrize(
    ("loss_fn", "size"), [(metrics.ssim_loss, 24), (metrics.ms_ssim_loss, 161)]
)
def test_losses_train(loss_fn, size: int) -> None:  # type: ignore[no-untyped-def]
    target = _nchw(_scene(size, size, channels=1)).float()
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    output = (target + 0.2 * noise).clamp(0, 1).requires_grad_(True)
    optimizer = torch.optim.Adam([output], lr=1e-2)
    first = loss_fn(output, target)
    assert first.ndim == 0 and 0.0 < first.item() < 1.0
    for _ in range(3):
        optimizer.zero_grad()
        loss = loss_fn(output, target)
        loss.backward()
        assert output.grad is not None and torch.isfinite(output.grad).all()
        optimizer.step()
    assert loss_fn(output, target).item() < first.item()


# ------------------------------------------------------------------------- compare


def test_compare_large_images() -> None:
    reference = _scene(*MS_SHAPE).astype(np.float32)
    test = _distort(reference, "noise").astype(np.float32)
    quality = metrics.compare(reference, test)
    assert isinstance(quality, metrics.ImageQuality)
    assert quality.psnr_db == pytest.approx(metrics.psnr(reference, test))
    assert quality.ssim == pytest.approx(metrics.ssim(reference, test))
    assert quality.ms_ssim == pytest.approx(metrics.ms_ssim(reference, test))
    diff = np.abs(reference.astype(np.float64) - test.astype(np.float64)).max()
    assert quality.max_abs_err == pytest.approx(diff)
    assert all(isinstance(v, float) for v in vars(quality).values())


def test_compare_identical() -> None:
    image = _scene(*MS_SHAPE)
    quality = metrics.compare(image, image)
    assert quality == metrics.ImageQuality(
        psnr_db=float("inf"), ssim=pytest.approx(1.0), ms_ssim=pytest.approx(1.0), max_abs_err=0.0
    )


def test_compare_small_images_and_ms_ssim_switch() -> None:
    reference = _scene(32, 40)
    test = _distort(reference, "gain")
    assert metrics.compare(reference, test).ms_ssim is None
    with pytest.raises(InputError, match="161"):
        metrics.compare(reference, test, with_ms_ssim=True)
    large = _scene(*MS_SHAPE)
    assert metrics.compare(large, large, with_ms_ssim=False).ms_ssim is None


def test_compare_batch_is_mean_over_images() -> None:
    reference = np.stack([_scene(20, 20, seed=s) for s in range(2)])
    test = np.stack([_distort(reference[0], "noise"), _distort(reference[1], "blur")])
    quality = metrics.compare(reference, test)
    assert quality.psnr_db == pytest.approx(float(np.mean(metrics.psnr(reference, test))))
    assert quality.ssim == pytest.approx(float(np.mean(metrics.ssim(reference, test))))
    assert quality.max_abs_err == pytest.approx(float(np.abs(reference - test).max()))


# --------------------------------------------------------------------------- errors

_OK = _scene(16, 16)


@pytest.mark.parametrize(
    ("reference", "test", "match"),
    [
        (_OK, _OK[:15], "shapes differ"),
        (_OK[..., 0], _OK[..., 0], r"HWC or NHWC.*x\[\.\.\., None\]"),
        (_OK[None, None], _OK[None, None], "HWC or NHWC"),
        (_OK, np.where(np.eye(16)[..., None] > 0, np.nan, _OK), "NaN"),
        (np.full_like(_OK, np.inf), _OK, "NaN or infinite"),
        ((_OK * 255).astype(np.uint8), (_OK * 255).astype(np.uint8), "float array"),
        (np.moveaxis(_OK, -1, 0), np.moveaxis(_OK, -1, 0), "channels-first"),
        (np.zeros((0, 4, 3)), np.zeros((0, 4, 3)), "empty"),
    ],
)
@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim, metrics.ms_ssim, metrics.compare])
def test_numpy_input_errors(fn, reference, test, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match) as info:
        fn(reference, test)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, EdgeIspError) and info.value.exit_code == 3


def test_size_errors_say_the_minimum() -> None:
    small = _scene(10, 40)
    with pytest.raises(InputError, match=r"at least 11x11 px.*got 10x40"):
        metrics.ssim(small, small)
    medium = _scene(160, 300)
    with pytest.raises(InputError, match=r"at least 161x161 px.*got 160x300"):
        metrics.ms_ssim(medium, medium)
    with pytest.raises(InputError, match=r"at least 161x161 px"):
        metrics.ms_ssim_torch(_nchw(medium), _nchw(medium))
    with pytest.raises(InputError, match=r"at least 11x11 px"):
        metrics.ssim_loss(_nchw(small), _nchw(small))


@pytest.mark.parametrize("data_range", [0, -1.0, float("nan"), float("inf"), "one"])
def test_bad_data_range(data_range) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="data_range"):
        metrics.psnr(_OK, _OK, data_range=data_range)
    with pytest.raises(InputError, match="data_range"):
        metrics.ssim_torch(_nchw(_OK), _nchw(_OK), data_range=data_range)


_T_OK = _nchw(_OK)


@pytest.mark.parametrize(
    ("reference", "test", "match"),
    [
        (_T_OK, _T_OK[..., :15], "shapes differ"),
        (_T_OK[0], _T_OK[0], r"NCHW.*unsqueeze\(0\)"),
        (_T_OK.permute(0, 2, 3, 1), _T_OK.permute(0, 2, 3, 1), "channels-last"),
        (_T_OK, torch.full_like(_T_OK, float("nan")), "NaN"),
        (_T_OK, (_T_OK * 255).to(torch.uint8), "float tensor"),
        (_OK, _OK, "must be a torch tensor"),
    ],
)
@pytest.mark.parametrize("fn", [metrics.psnr_torch, metrics.ssim_torch, metrics.ms_ssim_torch])
def test_torch_input_errors(fn, reference, test, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match) as info:
        fn(reference, test)
    assert "\n" not in str(info.value)


def test_numpy_api_rejects_tensors_with_a_hint() -> None:
    with pytest.raises(InputError, match="torch tensor.*numpy"):
        metrics.psnr(_T_OK[0], _T_OK[0])


def test_check_finite_can_be_switched_off() -> None:
    bad = torch.full_like(_T_OK, float("nan"))
    assert torch.isnan(metrics.ssim_torch(_T_OK, bad, check_finite=False)).all()
