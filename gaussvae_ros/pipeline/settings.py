"""The one settings object of the memory pipeline: how a frame becomes a memory.

:class:`MemorySettings` holds the working size, the warm-start rule, the fit (a
:class:`~gaussvae_ros.core.FitConfig`: Gaussians, iterations, threads, seed) and the payload codec.
It is made once, by :meth:`MemorySettings.make`, from the encoder node's parameters or the replay
options, and travels as one value to :func:`~gaussvae_ros.pipeline.memory.fit_memory`, which fits
the frame with ``settings.fit`` and hands the same ``settings.fit`` to the payload encoder (a codec
that fits again, tiles, fits each tile with it). :meth:`MemorySettings.make` is the one place where
0 / None mean "the fitter's own budget" (``max_iters``) and "torch's default" (``threads``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gaussvae_ros.codecs import PayloadEncoder, payload_encoder
from gaussvae_ros.core import BitDepths, FitConfig, encoded_size
from gaussvae_ros.store.records import DEFAULT_CODEC

__all__ = [
    "DEFAULT_GAUSSIANS", "DEFAULT_LONG_SIDE", "DEFAULT_MAX_ITERS", "DEFAULT_MEMORY_BYTES", "DEFAULT_MEMORY_CODEC",
    "DEFAULT_THREADS", "DEFAULT_WARM_START_MAX_CHANGE", "MemorySettings",
]

#: Working resolution: frames are fitted with their long side at 256 pixels (a 1226 x 370 KITTI
#: frame becomes 256 x 77, a 752 x 480 EuRoC frame 256 x 163). That keeps the layout of a scene
#: recognisable while a warm-started fit takes a fraction of a second on a CPU core; the
#: Gaussians are resolution-free, so recall renders them at any size.
DEFAULT_LONG_SIDE = 256

#: Gaussians per memory at the working resolution (about one per 40 pixels of a KITTI frame).
DEFAULT_GAUSSIANS = 512

#: Fitting iterations per memory. Measured on the KITTI keyframes at 256 x 77 with 512 Gaussians
#: (mean PSNR of cold fits): 30 iterations 22-23 dB, 100 iterations 24.5-28.6 dB (mean 26.3), 300
#: iterations about 1.5 dB more for three times the time (the fitter's own budget,
#: ``FitConfig.max_iters``, is 350 since commit b8d8013).
DEFAULT_MAX_ITERS = 100

#: Warm start only from a previous keyframe this similar (thumbnail mean absolute difference, see
#: :mod:`gaussvae_ros.bag.keyframes`). Measured on KITTI at 100 iterations: a warm start gains
#: 1-2 dB for changes below 0.1 (consecutive frames), nothing at 0.1-0.13, and loses up to 5 dB
#: for the 0.2-0.27 typical of keyframes 5 m apart, where the scene has moved on.
DEFAULT_WARM_START_MAX_CHANGE = 0.1

#: CPU threads for fitting (torch's and the rasterizer's). One: a KITTI keyframe at 256 x 77 with
#: 512 Gaussians and 100 iterations fits in 0.43 s on one thread of the 2-core development machine
#: while other processes ran, against 1.3-3.4 s with two threads (waiting threads spin when the
#: other core is busy), and the tensors are too small for a second thread to pay off.
DEFAULT_THREADS = 1


#: Codec of new memories when none is named: the one that measured best at the byte budget
#: (``gaussians-rd``: at every budget measured it decodes better than ``gaussians-q`` and
#: ``vae-latent`` in as many bytes; BENCHMARKS.md, "Memories by bytes").
DEFAULT_MEMORY_CODEC = "gaussians-rd"

#: Bytes per memory when none is named (see BENCHMARKS.md, "Memories by bytes", for the choice).
DEFAULT_MEMORY_BYTES = 2048


@dataclass(frozen=True)
class MemorySettings:
    """How frames become memories (see the module docstring); make one with :meth:`make`.

    Attributes:
        long_side: working resolution, pixels of the long side (frames are never enlarged).
        warm_start_max_change: warm-start a fit from the camera's previous keyframe only when the
            frames' thumbnails differ by less than this (0 never warm-starts).
        fit: the fitter's settings (``n_gaussians``, ``max_iters``, ``threads``, ``seed``, ...), for
            the frame's fit and for any fitting the codec does itself.
        codec: the payload codec (:func:`gaussvae_ros.codecs.payload_encoder`).
        memory_bytes: the byte budget of one memory (0: the codec's own size, e.g. ``gaussians-q``'s
            ``fit.n_gaussians`` Gaussians). ``gaussians-rd`` fits each frame to it; ``gaussians-q``
            takes the most Gaussians that fit it; ``vae-latent`` the finest step that fits it.
        latent_model, latent_step, latent_max_bytes, latent_refine_iters, latent_tiles: options of
            ``vae-latent`` (``latent_max_bytes``, when set, wins over ``memory_bytes``).
    """

    long_side: int = DEFAULT_LONG_SIDE
    warm_start_max_change: float = DEFAULT_WARM_START_MAX_CHANGE
    fit: FitConfig = field(default_factory=lambda: FitConfig(n_gaussians=DEFAULT_GAUSSIANS,
                                                             max_iters=DEFAULT_MAX_ITERS, threads=DEFAULT_THREADS))
    codec: str = DEFAULT_CODEC
    memory_bytes: int = 0
    latent_model: str = ""
    latent_step: float = 0.0
    latent_max_bytes: int = 0
    latent_refine_iters: int = 0
    latent_tiles: int = 1

    @classmethod
    def make(cls, *, long_side: int = DEFAULT_LONG_SIDE, n_gaussians: int = DEFAULT_GAUSSIANS,
             max_iters: int | None = DEFAULT_MAX_ITERS, threads: int | None = DEFAULT_THREADS, seed: int = 0,
             warm_start_max_change: float = DEFAULT_WARM_START_MAX_CHANGE, fit_overrides: dict | None = None,
             codec: str = DEFAULT_CODEC, memory_bytes: int = 0, latent_model: str = "", latent_step: float = 0.0,
             latent_max_bytes: int = 0, latent_refine_iters: int = 0, latent_tiles: int = 1) -> "MemorySettings":
        """Settings from plain values. ``max_iters`` 0 or None: the fitter's own budget
        (``FitConfig.max_iters``); ``threads`` 0 or None: torch's default. ``fit_overrides``:
        further :class:`~gaussvae_ros.core.FitConfig` fields. ``memory_bytes`` with ``gaussians-q``
        sets ``n_gaussians`` to the most RGB Gaussians whose payload fits it."""
        if int(memory_bytes) < 0:
            raise ValueError(f"memory_bytes must be >= 0, got {memory_bytes}")
        if codec == DEFAULT_CODEC and memory_bytes:
            n_gaussians = gaussians_q_count(int(memory_bytes))
        fit = dict(fit_overrides or {}, n_gaussians=int(n_gaussians), seed=int(seed),
                   threads=int(threads) if threads else None)
        if max_iters:
            fit["max_iters"] = int(max_iters)
        return cls(int(long_side), float(warm_start_max_change), FitConfig(**fit), codec, int(memory_bytes),
                   latent_model, float(latent_step), int(latent_max_bytes), int(latent_refine_iters),
                   int(latent_tiles))

    @property
    def n_gaussians(self) -> int:
        return self.fit.n_gaussians

    def payload_encoder(self) -> PayloadEncoder:
        """The encoder of these memories (ValueError for options the codec cannot take, or a Gaussian
        count it cannot encode)."""
        # gaussians-q's size is its count (set by make); the others code to a byte budget
        max_bytes = 0 if self.codec == DEFAULT_CODEC else (self.latent_max_bytes or self.memory_bytes)
        encoder = payload_encoder(self.codec, model=self.latent_model, step=self.latent_step, max_bytes=max_bytes,
                                  refine_iters=self.latent_refine_iters, tiles=self.latent_tiles)
        encoder.check_count(self.n_gaussians)
        return encoder


def gaussians_q_count(memory_bytes: int) -> int:
    """The most RGB Gaussians whose ``gaussians-q`` payload (12/8/8/8 bits) fits ``memory_bytes``."""
    n = min(0xFFFF, (memory_bytes - encoded_size(0, 3)) * 8 // BitDepths().bits_per_gaussian(3))
    if n < 1:
        raise ValueError(f"memory_bytes {memory_bytes} holds no gaussians-q Gaussian "
                         f"(the smallest payload is {encoded_size(1, 3)} bytes)")
    return n
