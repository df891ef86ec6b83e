"""The memory pipeline room (ROS-free): frame -> working image -> keyframe decision -> fit (warm
start) -> payload -> memory record, run by both the live encoder node and ``gaussvae replay``.

* :mod:`.settings`: :class:`MemorySettings`, the one settings object (fit + codec) of a run;
* :mod:`.memory`: the steps (:func:`prepare_frame`, :func:`warm_start`, :func:`fit_memory`,
  :func:`stored_memory`).

May import: :mod:`gaussvae_ros.core`, :mod:`gaussvae_ros.codecs`, :mod:`gaussvae_ros.bag` (keyframe
policy) and :mod:`gaussvae_ros.store` (the record). Never the nodes or the applications.
"""

from .memory import FittedMemory, fit_memory, prepare_frame, stored_memory, warm_start
from .settings import (DEFAULT_GAUSSIANS, DEFAULT_LONG_SIDE, DEFAULT_MAX_ITERS, DEFAULT_MEMORY_BYTES,
                       DEFAULT_MEMORY_CODEC, DEFAULT_THREADS, DEFAULT_WARM_START_MAX_CHANGE, MemorySettings)

__all__ = [
    "DEFAULT_GAUSSIANS", "DEFAULT_LONG_SIDE", "DEFAULT_MAX_ITERS", "DEFAULT_MEMORY_BYTES", "DEFAULT_MEMORY_CODEC",
    "DEFAULT_THREADS", "DEFAULT_WARM_START_MAX_CHANGE",
    "FittedMemory", "MemorySettings", "fit_memory", "prepare_frame", "stored_memory", "warm_start",
]
