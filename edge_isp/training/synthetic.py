"""Synthetic RAW/RGB training pairs: 'unprocess' ordinary sRGB photos into noisy Bayer RAW.

After Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019): each
sRGB photo crop is taken back through an approximate camera pipeline, in reverse:

1. inverse tone curve (the smoothstep ``3x^2 - 2x^3`` undone analytically),
2. inverse gamma (``x^2.2``) -> linear sRGB,
3. inverse colour matrix: a random camera whose RGB is a desaturated mix of sRGB
   (rows sum to one, so grey stays grey),
4. inverse white balance and a random exposure (digital gain), with highlights kept
   from clipping the way Brooks et al. do,
5. Bayer mosaic (RGGB) -> packed B, Gr, R, Gb (the SDK's canonical order),
6. heteroscedastic noise: shot noise ``~ x * lambda_shot`` and read noise with
   ``log lambda_read`` linear in ``log lambda_shot``, then quantisation to 12 bits.

The target is the photo crop itself, so a network trained on the pairs learns the whole
forward ISP: denoise, demosaic, white balance, colour, exposure, tone. No download: the
photos are the natural images that ship inside scikit-image's ``data`` module and
scikit-learn's sample images. ``HELD_OUT`` lists the photos training never sees.

Everything is numpy and seeded (``numpy.random.Generator``), so a batch is a pure
function of (seed, step).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_isp.errors import InputError, MissingDependencyError

# Natural photos that ship with scikit-image / scikit-learn, by source.
COLOUR_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle", "chelsea", "china", "flower")
# Grey photos and textures (made neutral RGB): teach neutral scenes and fine detail.
GREY_PHOTOS = ("camera", "grass", "gravel", "brick", "coins", "moon", "clock")
# Never used for training: the held-out set for validation and the model card.
HELD_OUT = ("chelsea", "flower")
TRAIN_PHOTOS = tuple(p for p in COLOUR_PHOTOS + GREY_PHOTOS if p not in HELD_OUT)

PHOTO_SOURCES = {
    **{n: "scikit-image data module (BSD-3-Clause; see skimage/data/README.txt)" for n in
       ("astronaut", "coffee", "rocket", "motorcycle", "chelsea", "camera", "grass", "gravel",
        "brick", "coins", "moon", "clock")},
    "china": "scikit-learn sample images (china.jpg; licence: CC BY 2.0 per sklearn docs)",
    "flower": "scikit-learn sample images (flower.jpg; licence: CC BY 2.0 per sklearn docs)",
}


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """One packaged photo as float32 (H, W, 3) sRGB in [0, 1] (read-only, cached)."""
    if name in ("china", "flower"):
        try:
            from sklearn.datasets import load_sample_image
        except ImportError as exc:  # pragma: no cover - env dependent
            raise MissingDependencyError(
                "the synthetic photo set needs scikit-learn: pip install scikit-learn"
            ) from exc
        img = load_sample_image(f"{name}.jpg")
    else:
        try:
            import skimage.data as skd
        except ImportError as exc:  # pragma: no cover - env dependent
            raise MissingDependencyError(
                "the synthetic photo set needs scikit-image: pip install scikit-image"
            ) from exc
        if name == "motorcycle":
            img = skd.stereo_motorcycle()[0]
        elif hasattr(skd, name) and (name in COLOUR_PHOTOS or name in GREY_PHOTOS):
            img = getattr(skd, name)()
        else:
            raise InputError(
                f"unknown photo {name!r}; choose from {', '.join(COLOUR_PHOTOS + GREY_PHOTOS)}"
            )
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    arr = arr[..., :3].astype(np.float32) / 255.0
    arr.setflags(write=False)
    return arr


# ---------------------------------------------------------------------------------------
# The forward model and its inverse
# ---------------------------------------------------------------------------------------


def inverse_smoothstep(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 3.0 * x * x - 2.0 * x * x * x


@dataclass(frozen=True)
class UnprocessParams:
    """One random camera: the parameters the forward ISP must undo."""

    rgb2cam: np.ndarray  # (3, 3), rows sum to 1
    red_gain: float
    blue_gain: float
    exposure_gain: float  # linear brightness of the RAW relative to the photo (< 1 darker)
    shot_noise: float
    read_noise: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rgb2cam": self.rgb2cam.tolist(), "red_gain": self.red_gain,
            "blue_gain": self.blue_gain, "exposure_gain": self.exposure_gain,
            "shot_noise": self.shot_noise, "read_noise": self.read_noise,
        }


@dataclass(frozen=True)
class UnprocessConfig:
    """Ranges of the random camera (defaults follow Brooks et al. 2019 in spirit)."""

    desaturation: tuple[float, float] = (0.15, 0.45)  # camera RGB mix toward grey
    ccm_jitter: float = 0.06
    red_gain: tuple[float, float] = (1.6, 2.4)
    blue_gain: tuple[float, float] = (1.3, 2.0)
    # With this probability the gains come from the wide ranges instead (0: never, and no
    # extra random draw, so profiles without it reproduce exactly).
    wide_gain_probability: float = 0.0
    red_gain_wide: tuple[float, float] = (1.0, 2.6)
    blue_gain_wide: tuple[float, float] = (1.0, 2.4)
    exposure_ev: tuple[float, float] = (-1.5, 0.3)  # RAW brightness, EV vs the photo's
    log_shot_noise: tuple[float, float] = (np.log(1e-4), np.log(1.2e-2))
    read_slope: float = 2.18
    read_offset: float = 1.2
    read_sigma: float = 0.26
    bits: int = 12


def sample_params(rng: np.random.Generator, config: UnprocessConfig = UnprocessConfig()) -> UnprocessParams:
    s = rng.uniform(*config.desaturation)
    grey = np.full((3, 3), 1.0 / 3.0)
    m = (1.0 - s) * np.eye(3) + s * grey + rng.normal(0.0, config.ccm_jitter, (3, 3))
    m = np.clip(m, 0.0, None)
    m /= m.sum(axis=1, keepdims=True)
    log_shot = rng.uniform(*config.log_shot_noise)
    log_read = config.read_slope * log_shot + config.read_offset + rng.normal(0.0, config.read_sigma)
    wide = config.wide_gain_probability > 0 and rng.uniform() < config.wide_gain_probability
    return UnprocessParams(
        rgb2cam=m.astype(np.float32),
        red_gain=float(rng.uniform(*(config.red_gain_wide if wide else config.red_gain))),
        blue_gain=float(rng.uniform(*(config.blue_gain_wide if wide else config.blue_gain))),
        exposure_gain=float(2.0 ** rng.uniform(*config.exposure_ev)),
        shot_noise=float(np.exp(log_shot)),
        read_noise=float(np.exp(log_read)),
    )


def unprocess(
    srgb: np.ndarray, params: UnprocessParams, rng: np.random.Generator, *, bits: int = 12,
    noise: bool = True,
) -> np.ndarray:
    """sRGB (H, W, 3) in [0, 1] (H, W even) -> packed noisy RAW (4, H/2, W/2), B Gr R Gb."""
    if srgb.shape[0] % 2 or srgb.shape[1] % 2:
        raise InputError(f"unprocess needs even sides, got {srgb.shape[:2]}")
    lin = np.power(np.clip(inverse_smoothstep(srgb), 1e-8, 1.0), 2.2)
    cam = lin @ params.rgb2cam.T
    gains = np.array([params.red_gain, 1.0, params.blue_gain], np.float32)
    # Highlight-preserving inverse white balance (Brooks et al.): bright pixels are divided
    # by less, so a white highlight stays white at the sensor instead of turning coloured.
    grey = cam.mean(axis=-1, keepdims=True)
    t = np.square(np.clip(grey - 0.9, 0.0, None) / 0.1)
    inv = 1.0 / gains
    safe = np.maximum(inv, (1.0 - t) * inv + t)
    cam = np.clip(cam * safe * params.exposure_gain, 0.0, 1.0)
    # RGGB mosaic, packed as B, Gr, R, Gb.
    packed = np.stack(
        [cam[1::2, 1::2, 2], cam[0::2, 1::2, 1], cam[0::2, 0::2, 0], cam[1::2, 0::2, 1]]
    ).astype(np.float32)
    if noise:
        var = packed * params.shot_noise + params.read_noise
        packed = packed + rng.standard_normal(packed.shape).astype(np.float32) * np.sqrt(var)
    levels = float(2**bits - 1)
    packed = np.round(np.clip(packed, 0.0, 1.0) * levels) / levels
    return packed.astype(np.float32)


# ---------------------------------------------------------------------------------------
# Augmentation and batches
# ---------------------------------------------------------------------------------------


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    """Antialiased bilinear resize of (H, W, 3) by ``scale`` (torch: fast and deterministic)."""
    if abs(scale - 1.0) < 1e-3:
        return img
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    size = (max(1, round(img.shape[0] * scale)), max(1, round(img.shape[1] * scale)))
    out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).clamp(0, 1).numpy().astype(np.float32)


def _jitter_colour(img: np.ndarray, rng: np.random.Generator, max_angle: float = 0.5) -> np.ndarray:
    """Random saturation and chroma rotation (hue), keeping luminance: more colour variety."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    y = img @ w
    chroma = img - y[..., None]
    angle = rng.uniform(-max_angle, max_angle)
    # Rotate the chroma vector about the grey axis (Rodrigues with unit axis (1,1,1)/sqrt3).
    k = np.ones(3, np.float32) / np.sqrt(3.0)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], np.float32)
    rot = np.eye(3, dtype=np.float32) + np.sin(angle) * kx + (1 - np.cos(angle)) * (kx @ kx)
    chroma = chroma @ rot.T * rng.uniform(0.7, 1.3)
    return np.clip(y[..., None] + chroma, 0.0, 1.0).astype(np.float32)


@dataclass
class SyntheticPairs:
    """Endless seeded batches of (packed RAW, sRGB target) crops from packaged photos.

    ``batch(step)`` is a pure function of ``(seed, step)``: resuming training at step k
    sees exactly the batches an uninterrupted run would have seen.
    """

    photos: Sequence[str] = TRAIN_PHOTOS
    crop: int = 128  # RGB/mosaic side; the packed input is crop/2
    batch_size: int = 16
    seed: int = 0
    grey_probability: float = 0.2
    colour_jitter_probability: float = 0.5
    hue_range: float = 0.5  # radians of random chroma rotation (pi = any hue)
    config: UnprocessConfig = field(default_factory=UnprocessConfig)

    def __post_init__(self) -> None:
        if self.crop % 2 or self.crop < 16:
            raise InputError(f"crop must be even and >= 16, got {self.crop}")
        self._colour = [p for p in self.photos if p not in GREY_PHOTOS]
        self._grey = [p for p in self.photos if p in GREY_PHOTOS]
        if not self._colour and not self._grey:
            raise InputError("SyntheticPairs needs at least one photo")
        bad = set(self.photos) & set(HELD_OUT)
        if bad:
            raise InputError(f"photos {sorted(bad)} are held out and never used for training")

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        use_grey = self._grey and (not self._colour or rng.random() < self.grey_probability)
        pool = self._grey if use_grey else self._colour
        img = load_photo(pool[int(rng.integers(len(pool)))])
        h, w = img.shape[:2]
        min_scale = self.crop / min(h, w)
        scale = float(rng.uniform(max(0.45, min_scale), 1.0))
        side = int(np.ceil(self.crop / scale)) + 2
        side = min(side, h, w)
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        patch = _resize(np.asarray(img[top:top + side, left:left + side]), self.crop / side)
        patch = patch[: self.crop, : self.crop]
        if patch.shape[0] < self.crop or patch.shape[1] < self.crop:  # rounding
            patch = np.pad(patch, ((0, self.crop - patch.shape[0]), (0, self.crop - patch.shape[1]), (0, 0)), mode="edge")
        k = int(rng.integers(4))
        patch = np.rot90(patch, k)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patch = np.ascontiguousarray(patch)
        if not use_grey and rng.random() < self.colour_jitter_probability:
            patch = _jitter_colour(patch, rng, self.hue_range)
        params = sample_params(rng, self.config)
        raw = unprocess(patch, params, rng, bits=self.config.bits)
        return raw, patch.transpose(2, 0, 1).copy()

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, step])
        pairs = [self.sample(rng) for _ in range(self.batch_size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


# Named settings of SyntheticPairs. 'v1' is the first profile (kept so the shipped model's
# first two training runs reproduce); 'colour' fixes what its pictures showed: greens and
# magentas came out grey because the grey photos include a grass texture (grass -> grey)
# and the packaged colour photos have few greens, and real sensors are more desaturated
# than v1's cameras. It uses no grass, fewer grey photos, any hue, stronger desaturation.
SYNTHETIC_PROFILES: dict[str, dict[str, Any]] = {
    "v1": {},
    "colour": {
        "photos": tuple(p for p in TRAIN_PHOTOS if p != "grass"),
        "grey_probability": 0.05,
        "colour_jitter_probability": 0.7,
        "hue_range": float(np.pi),
        "config": UnprocessConfig(desaturation=(0.25, 0.6)),
    },
    # 'colour' plus brighter exposures, so that clipped highlights (all channels at the
    # white level) are common and learnt as white, not as the WB gains' magenta.
    "colour-hl": {
        "photos": tuple(p for p in TRAIN_PHOTOS if p != "grass"),
        "grey_probability": 0.05,
        "colour_jitter_probability": 0.7,
        "hue_range": float(np.pi),
        "config": UnprocessConfig(desaturation=(0.25, 0.6), exposure_ev=(-1.5, 1.2)),
    },
    # 'colour-hl' with white-balance gains wide enough for real sensors: the shipped model's
    # pictures showed a lavender colour chart (that sensor needs a blue gain of ~1.1, below
    # 1.3) and pink white fur on the dog (red gain ~1.2-1.45, below 1.6), so the network
    # must estimate the illuminant from the picture instead of assuming a typical one.
    "colour-wb": {
        "photos": tuple(p for p in TRAIN_PHOTOS if p != "grass"),
        "grey_probability": 0.05,
        "colour_jitter_probability": 0.7,
        "hue_range": float(np.pi),
        "config": UnprocessConfig(desaturation=(0.25, 0.6), exposure_ev=(-1.5, 1.2),
                                  red_gain=(1.0, 2.6), blue_gain=(1.0, 2.4)),
    },
    # Half the cameras typical (the 'colour-hl' gains), half from the wide ranges: the wide-only
    # profile made the network doubt every white point, which cost ~2 dB on typical cameras
    # and on colour-cast scenes (an orange cat) where reading the illuminant off the picture
    # fails; the mixture keeps a prior for typical cameras and still covers the real sensors.
    "colour-wb-mix": {
        "photos": tuple(p for p in TRAIN_PHOTOS if p != "grass"),
        "grey_probability": 0.05,
        "colour_jitter_probability": 0.7,
        "hue_range": float(np.pi),
        "config": UnprocessConfig(desaturation=(0.25, 0.6), exposure_ev=(-1.5, 1.2), wide_gain_probability=0.5),
    },
}
DEFAULT_PROFILE = "colour-wb-mix"


def camera_config(profile: str = "") -> UnprocessConfig:
    """The random-camera ranges of a named profile ('' = the plain defaults, as the card's figures)."""
    if not profile:
        return UnprocessConfig()
    if profile not in SYNTHETIC_PROFILES:
        raise InputError(f"unknown synthetic profile {profile!r}; use {', '.join(SYNTHETIC_PROFILES)}")
    return SYNTHETIC_PROFILES[profile].get("config", UnprocessConfig())


def synthetic_pairs(profile: str = DEFAULT_PROFILE, **kwargs: Any) -> SyntheticPairs:
    """SyntheticPairs with a named profile's settings (``kwargs`` win)."""
    if profile not in SYNTHETIC_PROFILES:
        raise InputError(f"unknown synthetic profile {profile!r}; use {', '.join(SYNTHETIC_PROFILES)}")
    return SyntheticPairs(**{**SYNTHETIC_PROFILES[profile], **kwargs})


@dataclass(frozen=True)
class HeldOutImage:
    name: str
    raw: np.ndarray  # packed (4, h, w)
    target: np.ndarray  # (3, 2h, 2w)
    params: UnprocessParams


def held_out_set(
    draws: int = 32, *, seed: int = 0, photos: Sequence[str] = HELD_OUT, multiple: int = 16,
    max_side: int | None = None, config: UnprocessConfig = UnprocessConfig(),
) -> list[HeldOutImage]:
    """Fixed draws of the held-out photos (full size, cropped to ``multiple`` on the mosaic).

    ``draws`` images in total, cycling through ``photos``; each has its own random camera
    and noise from ``seed``. ``max_side`` centre-crops (for quick tests).
    """
    out: list[HeldOutImage] = []
    for i in range(draws):
        name = photos[i % len(photos)]
        img = load_photo(name)
        h, w = img.shape[:2]
        if max_side:
            h, w = min(h, max_side), min(w, max_side)
        m = max(2 * multiple, 2)
        h, w = h - h % m, w - w % m
        t0 = (img.shape[0] - h) // 2
        l0 = (img.shape[1] - w) // 2
        crop = np.ascontiguousarray(img[t0:t0 + h, l0:l0 + w])
        rng = np.random.default_rng([seed, 7919, i])
        params = sample_params(rng, config)
        raw = unprocess(crop, params, rng, bits=config.bits)
        out.append(HeldOutImage(f"{name}#{i}", raw, crop.transpose(2, 0, 1).copy(), params))
    return out


def raw_image_from_packed(packed: np.ndarray) -> Any:
    """A ``RawImage`` (RGGB, 16-bit) holding a packed synthetic RAW: input to the classical ISP."""
    from edge_isp.raw import RawImage, unpack_bayer

    mosaic = unpack_bayer(np.clip(packed, 0.0, 1.0), "RGGB")
    return RawImage(np.round(mosaic * 65535.0).astype(np.uint16), "RGGB", 0.0, 65535.0,
                    format="synthetic")
