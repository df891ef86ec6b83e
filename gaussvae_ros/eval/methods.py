"""Compression methods compared by the rate-distortion evaluation, behind one small interface.

A :class:`Method` answers one question: given an image (an :class:`ImageContext`) and a byte
budget, what is its best operating point that fits? :meth:`Method.compress` returns an
:class:`Encoded` (payload size, decoded uint8 image, the setting used). When nothing fits, the
method returns its smallest output instead; the evaluator notices ``nbytes > budget`` and counts
the image as over budget. Methods may cache per image in ``ctx.cache[self.name]`` (every budget is
asked for the same image in turn), and share Gaussian fits through :meth:`ImageContext.fit`.

Methods here:

* :class:`PillowCodec`: JPEG, WebP, AVIF through Pillow, highest quality that fits (binary search).
* :class:`ScaledPillowCodec`: the same with the resolution as a second rate knob, what an engineer
  storing thumbnails does: per image, the best of :data:`SCALE_FACTORS` (Lanczos down, best quality
  that fits, decode, Lanczos back up); the factor is recorded in the setting.
* :class:`RDGaussianMethod`: codec ``gaussians-rd`` (:mod:`gaussvae_ros.codecs.gaussians_rd`), the
  frame fitted to the budget itself.
* :class:`GaussianMethod`: the quantized Gaussians alone (:mod:`gaussvae_ros.core.codec`), the
  best PSNR over a grid of Gaussian counts x bit-depth presets whose size fits.
* :class:`LatentMethod`: the VAE latent codec (``gaussvae_ros.codecs.latent``), when present;
  :func:`load_latent_method` says why it is not when it is not.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image
from PIL import features
from skimage.metrics import peak_signal_noise_ratio

from gaussvae_ros.codecs import gaussians_rd
from gaussvae_ros.codecs.latent.image_encoder import encode_image
from gaussvae_ros.core import (BitDepths, FitConfig, Gaussians, decode_gaussians, encode_gaussians, encoded_size,
                               fit_image, render, to_uint8)

#: PSNR reported for an exact reconstruction (JSON has no infinity).
PSNR_CAP = 100.0

#: Default Gaussian counts of the ``gaussians`` grid.
DEFAULT_COUNTS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)

#: Default bit-depth presets (xy, scale, rot, color) of the ``gaussians`` grid, finest first.
DEFAULT_PRESETS = (
    BitDepths(12, 8, 8, 8),  # the package default
    BitDepths(10, 7, 6, 7),
    BitDepths(9, 6, 6, 6),
    BitDepths(8, 6, 5, 5),
    BitDepths(7, 5, 4, 4),
)


def psnr_uint8(reference: np.ndarray, test: np.ndarray) -> float:
    """scikit-image PSNR of two uint8 images (data range 255), capped at :data:`PSNR_CAP`."""
    if np.array_equal(reference, test):
        return PSNR_CAP
    return min(PSNR_CAP, float(peak_signal_noise_ratio(reference, test, data_range=255)))


def image_digest(pixels: np.ndarray) -> str:
    """Hex SHA-1 of an image's shape and pixels: the key of its fits, in memory and on disk."""
    return hashlib.sha1(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


@dataclass
class Encoded:
    """One operating point of a method on one image."""

    nbytes: int
    image: np.ndarray  # decoded, uint8, same shape as the reference
    setting: dict = field(default_factory=dict)  # JSON-able: quality, Gaussian count, bit depths...


@dataclass
class FitOptions:
    """How :meth:`ImageContext.fit` fits Gaussians (forwarded to :func:`gaussvae_ros.core.fit_image`)."""

    max_iters: int | None = None  # None: the fitter's default (FitConfig.max_iters)
    seed: int = 0
    threads: int | None = 1
    cache_dir: str | None = None  # keep fits as .npz here, keyed by image content, count, iterations, seed


class ImageContext:
    """One evaluation image: the uint8 reference (``[H, W]`` gray or ``[H, W, 3]``) and caches."""

    def __init__(self, name: str, reference: np.ndarray, fit_options: FitOptions | None = None):
        if reference.dtype != np.uint8 or reference.ndim not in (2, 3):
            raise ValueError(f"{name}: reference must be a uint8 [H, W] or [H, W, 3] array")
        self.name = name
        self.reference = reference
        self.fit_options = fit_options or FitOptions()
        self.cache: dict[str, dict] = {}
        self._fits: dict[tuple[int, int], object] = {}

    @property
    def height(self) -> int:
        return self.reference.shape[0]

    @property
    def width(self) -> int:
        return self.reference.shape[1]

    @property
    def channels(self) -> int:
        return 1 if self.reference.ndim == 2 else 3

    @property
    def mode(self) -> str:
        return "L" if self.channels == 1 else "RGB"

    def target(self, channels: int | None = None) -> np.ndarray:
        """The reference with ``channels`` colour channels (gray stacked to RGB, RGB to luma)."""
        if channels is None or channels == self.channels:
            return self.reference
        if channels == 3:
            return np.ascontiguousarray(np.repeat(self.reference[:, :, None], 3, axis=2))
        return np.asarray(Image.fromarray(self.reference).convert("L"))

    def fit(self, n_gaussians: int, channels: int | None = None):
        """The Gaussians fitted to this image (converted to ``channels``, default its own) with
        ``n_gaussians`` (fitted once, then cached)."""
        channels = self.channels if channels is None else int(channels)
        key = (n_gaussians, channels)
        if key not in self._fits:
            o = self.fit_options
            path = self._cache_path(n_gaussians, channels)
            if path is not None and path.exists():
                with np.load(path) as stored:
                    gaussians = Gaussians.from_array(stored["params"], str(stored["blend"]))
            else:
                gaussians = fit_image(self.target(channels), n_gaussians=n_gaussians, max_iters=self.max_iters,
                                      seed=o.seed, threads=o.threads).gaussians
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".tmp.npz")
                    np.savez(tmp, params=gaussians.to_array(), blend=np.array(gaussians.blend))
                    os.replace(tmp, path)
            self._fits[key] = gaussians
        return self._fits[key]

    @property
    def max_iters(self) -> int:
        return self.fit_options.max_iters or FitConfig().max_iters

    def _cache_path(self, n_gaussians: int, channels: int) -> Path | None:
        o = self.fit_options
        if not o.cache_dir:
            return None
        target = self.target(channels)
        digest = image_digest(target)[:16]
        return Path(o.cache_dir) / f"{digest}_n{n_gaussians}_it{self.max_iters}_s{o.seed}.npz"

    def render(self, gaussians) -> np.ndarray:
        """Gaussians rendered at the reference size, as uint8 of the reference's shape (and channels)."""
        out = to_uint8(render(gaussians, self.height, self.width, threads=self.fit_options.threads))
        if out.ndim == self.reference.ndim:
            return out
        if out.ndim == 2:
            return np.ascontiguousarray(np.repeat(out[:, :, None], 3, axis=2))
        return np.asarray(Image.fromarray(out).convert("L"))


class Method:
    """A compression method (see the module docstring)."""

    name: str = "method"

    def compress(self, ctx: ImageContext, budget: int) -> Encoded:
        """The best operating point with at most ``budget`` bytes, else the method's smallest output."""
        raise NotImplementedError

    def _cache(self, ctx: ImageContext) -> dict:
        return ctx.cache.setdefault(self.name, {})


class PillowCodec(Method):
    """A Pillow image codec at the highest quality (0..100) whose file fits the budget.

    The file size is taken as non-decreasing in quality (binary search); the smallest output is
    quality 0. ``options`` are passed to ``Image.save`` (e.g. ``optimize=True`` for JPEG).
    """

    def __init__(self, name: str, pil_format: str, min_quality: int = 0, max_quality: int = 100, **options):
        self.name = name
        self.pil_format = pil_format
        self.min_quality = min_quality
        self.max_quality = max_quality
        self.options = options

    def encode(self, ctx: ImageContext, quality: int) -> Encoded:
        cache = self._cache(ctx)
        if quality not in cache:
            buffer = io.BytesIO()
            Image.fromarray(ctx.reference).save(buffer, self.pil_format, quality=int(quality), **self.options)
            data = buffer.getvalue()
            with Image.open(io.BytesIO(data)) as im:
                decoded = np.asarray(im.convert(ctx.mode))
            if decoded.shape != ctx.reference.shape:
                raise ValueError(f"{self.name} decoded {ctx.name} to shape {decoded.shape}, "
                                 f"expected {ctx.reference.shape}")
            cache[quality] = Encoded(len(data), decoded, {"quality": int(quality)})
        return cache[quality]

    def compress(self, ctx: ImageContext, budget: int) -> Encoded:
        lo, hi = self.min_quality, self.max_quality
        if self.encode(ctx, lo).nbytes > budget:
            return self.encode(ctx, lo)
        while lo < hi:  # invariant: quality lo fits
            mid = (lo + hi + 1) // 2
            if self.encode(ctx, mid).nbytes <= budget:
                lo = mid
            else:
                hi = mid - 1
        return self.encode(ctx, lo)


#: Downscale factors :class:`ScaledPillowCodec` tries (the ANCHORS definition, 1 = full size).
SCALE_FACTORS = (1.0, 0.85, 0.75, 0.65, 0.55, 0.5, 0.42, 0.35, 0.3, 0.25)


class ScaledPillowCodec(PillowCodec):
    """A Pillow codec with the resolution as a rate knob: per image and budget, the highest-PSNR of
    the downscale factors ``factors`` (Pillow Lanczos down on uint8, highest quality that fits,
    decoded, Lanczos back up to the reference size). Nothing fits: the smallest file of the
    smallest factor."""

    def __init__(self, name: str, pil_format: str, factors=SCALE_FACTORS, **options):
        super().__init__(name, pil_format, **options)
        if not factors or any(not 0 < f <= 1 for f in factors):
            raise ValueError(f"scale factors must be in (0, 1], got {list(factors)}")
        self.factors = tuple(factors)

    def _at(self, ctx: ImageContext, factor: float) -> PillowCodec:
        """A full-size codec over the image downscaled by ``factor`` (cached per image)."""
        cache = self._cache(ctx)
        if factor not in cache:
            w, h = max(1, round(ctx.width * factor)), max(1, round(ctx.height * factor))
            small = ctx.reference if (w, h) == (ctx.width, ctx.height) else \
                np.asarray(Image.fromarray(ctx.reference).resize((w, h), Image.LANCZOS))
            cache[factor] = (PillowCodec(self.name, self.pil_format, self.min_quality, self.max_quality,
                                         **self.options), ImageContext(ctx.name, small))
        return cache[factor]

    def compress(self, ctx: ImageContext, budget: int) -> Encoded:
        best, best_psnr, smallest = None, -1.0, None
        for factor in self.factors:
            codec, small = self._at(ctx, factor)
            encoded = codec.compress(small, budget)
            up = encoded.image if small.reference.shape == ctx.reference.shape else \
                np.asarray(Image.fromarray(encoded.image).resize((ctx.width, ctx.height), Image.LANCZOS))
            point = Encoded(encoded.nbytes, up, dict(encoded.setting, factor=factor))
            if smallest is None or point.nbytes < smallest.nbytes:
                smallest = point
            quality = psnr_uint8(ctx.reference, up) if point.nbytes <= budget else -1.0
            if quality > best_psnr:
                best, best_psnr = point, quality
        return best or smallest


class RDGaussianMethod(Method):
    """Codec ``gaussians-rd``: the image fitted to each budget (quantization-aware, rate-controlled;
    :func:`gaussvae_ros.codecs.gaussians_rd.encode_image`), decoded from its payload. The setting
    records the Gaussian count and the fit's time."""

    name = gaussians_rd.CODEC_ID

    def __init__(self, config: gaussians_rd.RDConfig | None = None):
        self.config = config or gaussians_rd.RDConfig()

    def compress(self, ctx: ImageContext, budget: int) -> Encoded:
        cache = self._cache(ctx)
        if budget not in cache:
            threads = ctx.fit_options.threads if self.config.threads is None else self.config.threads
            config = replace(self.config, threads=threads, seed=ctx.fit_options.seed)
            result = gaussians_rd.encode_image(ctx.reference, budget, config)
            decoded = ctx.render(gaussians_rd.decode(result.payload).gaussians)
            cache[budget] = Encoded(len(result.payload), decoded,
                                    {"gaussians": len(result.gaussians), "seconds": round(result.seconds, 3),
                                     "estimated_bytes": round(result.estimated_bytes, 1)})
        return cache[budget]


def _depths_dict(depths: BitDepths) -> dict:
    return {"xy": depths.xy, "scale": depths.scale, "rot": depths.rot, "color": depths.color}


class GaussianMethod(Method):
    """Quantized Gaussians: the highest-PSNR (count, bit depths) point of a grid that fits.

    Sizes are known before fitting (:func:`encoded_size`), so only counts with a point under the
    budget are fitted (once per image and count, shared with other methods); each fit is then
    re-quantized at every preset that fits. With ``fill``, each preset also gets the largest count
    that fills the budget (one more fit per budget and preset). With nothing under the budget, the
    smallest point of the grid (fewest Gaussians, coarsest preset) is the output.
    """

    name = "gaussians"

    def __init__(self, counts=DEFAULT_COUNTS, presets=DEFAULT_PRESETS, fill: bool = False):
        self.counts = tuple(sorted({int(n) for n in counts}))
        self.presets = tuple(presets)
        self.fill = bool(fill)
        if not self.counts or min(self.counts) < 1 or max(self.counts) > 0xFFFF:
            raise ValueError(f"Gaussian counts must be in 1..65535, got {list(counts)}")
        if not self.presets:
            raise ValueError("at least one bit-depth preset is needed")

    def candidates(self, channels: int, budget: int) -> list[tuple[int, BitDepths]]:
        """Grid points whose payload fits ``budget``; the single smallest point when none does."""
        grid = [(n, d) for n in self.counts for d in self.presets]
        fitting = [(n, d) for n, d in grid if encoded_size(n, channels, d) <= budget]
        if self.fill:
            for d in self.presets:
                n = min(0xFFFF, (budget - encoded_size(0, channels, d)) * 8 // d.bits_per_gaussian(channels))
                if n >= 1 and (n, d) not in fitting:
                    fitting.append((n, d))
        return fitting or [min(grid, key=lambda p: (encoded_size(p[0], channels, p[1]), p[0]))]

    def point(self, ctx: ImageContext, n: int, depths: BitDepths) -> tuple[Encoded, float]:
        cache = self._cache(ctx)
        key = (n, depths)
        if key not in cache:
            fitted = ctx.fit(n)  # a short fit may stop before adding all n Gaussians
            payload = encode_gaussians(fitted, depths)
            decoded = ctx.render(decode_gaussians(payload))
            setting = {"gaussians": n, "fitted": len(fitted), "depths": _depths_dict(depths)}
            cache[key] = (Encoded(len(payload), decoded, setting),
                          psnr_uint8(ctx.reference, decoded))
        return cache[key]

    def compress(self, ctx: ImageContext, budget: int) -> Encoded:
        scored = [self.point(ctx, n, d) for n, d in self.candidates(ctx.channels, budget)]
        return max(scored, key=lambda item: (item[1], -item[0].nbytes))[0]


class LatentMethod(Method):
    """The VAE latent codec (``gaussvae_ros.codecs.latent``) on Gaussians fitted at the model's count.

    ``codec`` is the codec module and ``bundle`` the model it loaded (``load_bundle``). Each image
    goes through the codec's image-level encoder (:func:`gaussvae_ros.codecs.latent.image_encoder.encode_image`):
    the finest quantization step that fits the budget, for each tile count of ``tiles`` (one latent
    per tile; the whole picture's fit is shared with the other methods, tiles are fitted and cached
    like it), refined against the image for ``refine_iters`` steps, and the grid whose decoding is
    closest to the image kept (per-image rate control). When nothing fits, the smallest output is
    scored. Per image, ``source_psnr`` is the PSNR of the Gaussians the payload was encoded from
    (all tiles), the reference of the "decoded within 1 dB of its Gaussians" target. Images whose
    colour channels differ from the model's are fitted converted (gray stacked to RGB, or RGB to
    luma) and the rendering converted back.
    """

    name = "ours"

    def __init__(self, codec, bundle, n_gaussians: int, channels: int | None = None, refine_iters: int = 0,
                 tiles: tuple[int, ...] = (1,)):
        self.codec = codec
        self.bundle = bundle
        self.n_gaussians = int(n_gaussians)
        self.channels = channels
        self.refine_iters = int(refine_iters)
        self.tiles = tuple(sorted({int(t) for t in tiles}))

    def _fit_tile(self, ctx: ImageContext, pixels: np.ndarray):
        """Gaussians of one tile (float ``[h, w, C]`` in ``[0, 1]``), fitted once per image and tile
        content (every budget asks again) through an :class:`ImageContext`, so that ``--fit-cache``
        keeps them across runs too."""
        tile = to_uint8(pixels)
        fits = ctx.cache.setdefault(f"{self.name}:tiles", {})
        key = image_digest(tile)
        if key not in fits:
            fits[key] = ImageContext(f"{ctx.name}:tile", tile, ctx.fit_options).fit(self.n_gaussians)
        return fits[key]

    def compress(self, ctx: ImageContext, budget: int) -> Encoded:
        cache = self._cache(ctx)
        if budget not in cache:
            gaussians = ctx.fit(self.n_gaussians, self.channels)
            if len(gaussians) != self.n_gaussians:
                raise ValueError(f"the fit of {ctx.name} has {len(gaussians)} Gaussians, the model needs "
                                 f"{self.n_gaussians} (raise --max-iters)")
            encoded = encode_image(self.bundle, ctx.target(self.channels), tiles=self.tiles, gaussians=gaussians,
                                   max_bytes=budget, refine_iters=self.refine_iters,
                                   fit=lambda pixels: self._fit_tile(ctx, pixels))
            decoded = self.codec.decode_latent(self.bundle, encoded.payload)
            source = psnr_uint8(ctx.reference, ctx.render(encoded.source))  # what was encoded, unquantized
            cache[budget] = Encoded(len(encoded.payload), ctx.render(decoded),
                                    {"gaussians": self.n_gaussians, "refine_iters": self.refine_iters,
                                     "step": encoded.step, "tiles": encoded.grid.count, "source_psnr": source})
        return cache[budget]


LATENT_CODEC_MODULE = "gaussvae_ros.codecs.latent"


def _model_gaussian_count(bundle) -> int | None:
    """Gaussians per image the VAE expects (its ``seq_len``), wherever the bundle keeps it."""
    for candidate in (bundle, getattr(bundle, "config", None)):
        for path in (("seq_len",), ("model", "seq_len")):
            obj = candidate
            for attr in path:
                obj = getattr(obj, attr, None)
            if isinstance(obj, int):
                return obj
    return None


def load_latent_method(model_path: str | None, refine_iters: int = 0,
                       tiles: tuple[int, ...] = (1,)) -> tuple[LatentMethod | None, str | None]:
    """``(method, None)`` when the VAE latent codec can run, else ``(None, reason)``. Without
    ``model_path``, the model shipped with the package (when this build has one); ``refine_iters``
    and ``tiles`` as in :class:`LatentMethod`."""
    try:
        spec = importlib.util.find_spec(LATENT_CODEC_MODULE)
    except ImportError:
        spec = None
    if spec is None:
        return None, f"{LATENT_CODEC_MODULE} is not in this build"
    try:
        codec = importlib.import_module(LATENT_CODEC_MODULE)
    except ImportError as exc:
        return None, f"{LATENT_CODEC_MODULE} does not import: {exc}"
    if not model_path:
        shipped = getattr(codec, "default_model_path", None)
        if not callable(shipped) or not shipped().exists():
            return None, "no --model given and no model shipped with this build"
        model_path = str(shipped())
    missing = [f for f in ("decode_latent",) if not callable(getattr(codec, f, None))]
    if missing:
        return None, f"{LATENT_CODEC_MODULE} has no {', '.join(missing)}"
    if not callable(getattr(codec, "load_bundle", None)):
        return None, f"{LATENT_CODEC_MODULE} has no load_bundle"
    try:
        bundle = codec.load_bundle(model_path)
    except (ValueError, OSError) as exc:
        return None, f"cannot load {model_path} as a latent codec model: {exc}"
    n = _model_gaussian_count(bundle)
    if n is None:
        return None, f"cannot tell how many Gaussians the model in {model_path} expects"
    channels = getattr(getattr(bundle, "transform", None), "color_channels", None)
    return LatentMethod(codec, bundle, n, channels if channels in (1, 3) else None, refine_iters, tiles), None


#: Pillow codecs: name -> (Pillow feature, format, save options).
PILLOW_FORMATS = {
    "jpeg": ("jpg", "JPEG", {"optimize": True}),
    "webp": ("webp", "WEBP", {"method": 6}),
    "avif": ("avif", "AVIF", {"speed": 4}),
}


def pillow_codecs(names=("jpeg", "webp", "avif")) -> tuple[list[PillowCodec], dict[str, str]]:
    """The Pillow codecs this Pillow build supports, and a note for each one it does not. A name
    ending in ``-scaled`` (``webp-scaled``) is the codec with the resolution as a rate knob
    (:class:`ScaledPillowCodec`)."""
    codecs, notes = [], {}
    for name in names:
        base = name.removesuffix("-scaled")
        feature, pil_format, options = PILLOW_FORMATS[base]
        if not features.check(feature):
            notes[name] = f"this Pillow build has no {base.upper()} support"
        elif name.endswith("-scaled"):
            codecs.append(ScaledPillowCodec(name, pil_format, **options))
        else:
            codecs.append(PillowCodec(name, pil_format, **options))
    return codecs, notes
