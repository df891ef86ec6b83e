"""Which ``vae-latent`` models this process knows: models registered by the caller, the model
shipped in ``gaussvae_ros/models/`` and the model files listed in ``$GAUSSVAE_LATENT_MODELS``
(files or folders of ``*.pt``, ``os.pathsep``-separated), each read again once its file changes.
:func:`decode_memory` is the payload registry's decoder of codec id ``vae-latent``."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from gaussvae_ros.core import Gaussians
from gaussvae_ros.vae.checkpoint import pin_file_digest

from ..errors import ModelMismatchError
from .bundle import LatentModelBundle, load_bundle
from .payload import CODEC_ID, decode_latent

__all__ = [
    "DEFAULT_MODEL_FILE", "ENV_MODELS", "decode_memory", "default_model_path", "find_latent_model",
    "load_default_bundle", "model_files", "register_latent_model", "unregister_latent_model",
]

#: File name of the shipped model in ``gaussvae_ros/models/`` (:func:`default_model_path`).
DEFAULT_MODEL_FILE = "gaussvae_latent_default.pt"
#: Environment variable listing more model files (or folders of them) for recall.
ENV_MODELS = "GAUSSVAE_LATENT_MODELS"
#: SHA-256 of the shipped model file, checked whenever it is loaded (a flipped byte or a zeroed block
#: is refused, never loaded as another model). ``scripts/train_default_model.sh`` prints the new
#: value when it ships a new model; ``test_codecs_default_model`` fails until it is updated here.
SHIPPED_MODEL_SHA256 = "e232f74725b49b722159ca30c5805e25fa6e71a7494359f65b5a3e969354845c"

_MODELS: dict[str, LatentModelBundle] = {}
_MODELS_LOCK = threading.Lock()
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _FileRead:
    """A model file as last read: its ``(mtime_ns, size)`` then (None: missing) and the bundle, or
    why it could not be loaded. A file is read again once its state changes (deployed after
    start-up, repaired, replaced in place), never otherwise."""

    state: tuple[int, int] | None
    bundle: LatentModelBundle | None = None
    error: str = ""


_FILES: dict[Path, _FileRead] = {}


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _read_model_file(path: Path) -> LatentModelBundle:
    """The bundle of model file ``path`` (resolved), read again only if the file changed since it was
    last read; registered. ValueError / OSError (remembered until the file changes) if it cannot load."""
    state = _file_state(path)
    with _MODELS_LOCK:
        read = _FILES.get(path)
    if read is None or read.state != state:
        try:
            read = _FileRead(state, load_bundle(path))
        except (ValueError, OSError) as exc:
            read = _FileRead(state, error=str(exc))
        with _MODELS_LOCK:
            _FILES[path] = read
    if read.bundle is None:
        raise ValueError(read.error)
    with _MODELS_LOCK:
        _MODELS[read.bundle.model_id] = read.bundle
    return read.bundle


def register_latent_model(bundle: LatentModelBundle | str | Path) -> LatentModelBundle:
    """Make a model (bundle or model file) available to :func:`decode_memory`; returns the bundle.
    A file already loaded in this process is not read again unless it changed since (then the new
    contents are loaded and registered too; the old model id stays decodable in this process)."""
    if isinstance(bundle, LatentModelBundle):
        with _MODELS_LOCK:
            _MODELS[bundle.model_id] = bundle
        return bundle
    path = Path(bundle).expanduser().resolve()
    if _file_state(path) is None:
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return _read_model_file(path)


def unregister_latent_model(model_id: str) -> None:
    """Forget a model id and that its file was read (no-op if unknown): a later lookup loads the
    file again if it is listed."""
    with _MODELS_LOCK:
        _MODELS.pop(model_id, None)
        for path in [p for p, read in _FILES.items() if read.bundle is not None and read.bundle.model_id == model_id]:
            del _FILES[path]


def model_files(entry: str | Path) -> list[Path]:
    """The model files an entry of ``$GAUSSVAE_LATENT_MODELS`` or of the recall node's
    ``latent_models`` names: the file, or every ``*.pt`` in a folder."""
    path = Path(entry).expanduser()
    return sorted(path.glob("*.pt")) if path.is_dir() else [path]


def _env_model_files() -> list[Path]:
    return [f for entry in os.environ.get(ENV_MODELS, "").split(os.pathsep) if entry.strip()
            for f in model_files(entry.strip())]


def default_model_path() -> Path:
    """The model file shipped with the package (its model card is ``MODEL_CARD.md`` beside it)."""
    return Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL_FILE


pin_file_digest(default_model_path(), SHIPPED_MODEL_SHA256)


def load_default_bundle() -> LatentModelBundle:
    """The shipped model, loaded once per process and registered for recall."""
    return register_latent_model(default_model_path())


def find_latent_model(model_id: str) -> LatentModelBundle:
    """The registered model of ``model_id``, loading on demand the shipped model, the models named by
    ``$GAUSSVAE_LATENT_MODELS`` and model files read before that changed since (a model file rewritten
    in place, e.g. by the entropy fitter); a file that cannot be loaded is logged, and tried again
    once it changes. Raises ModelMismatchError if no model has that id."""
    with _MODELS_LOCK:
        if model_id in _MODELS:
            return _MODELS[model_id]
        known_files = list(_FILES)
    candidates = [p.expanduser().resolve() for p in [default_model_path()] + _env_model_files()] + known_files
    for path in dict.fromkeys(candidates):
        state = _file_state(path)
        with _MODELS_LOCK:
            unchanged = path in _FILES and _FILES[path].state == state
        if unchanged:
            continue
        try:
            _read_model_file(path)
        except (ValueError, OSError) as exc:
            if state is not None or path != default_model_path():  # a build without a shipped model is normal
                _log.warning("cannot load VAE latent model %s: %s", path, exc)
        with _MODELS_LOCK:
            if model_id in _MODELS:
                return _MODELS[model_id]
    with _MODELS_LOCK:
        known = ", ".join(sorted(_MODELS)) or "none"
        failed = "; ".join(f"{p}: {read.error}" for p, read in sorted(_FILES.items()) if read.error)
    raise ModelMismatchError(f"no VAE latent model with id {model_id!r} is loaded (known: {known}); register it "
                          f"with register_latent_model() or list its file in ${ENV_MODELS}"
                          + (f" (could not load: {failed})" if failed else ""))


def decode_memory(payload: bytes, model_id: str) -> Gaussians:
    """Registry entry point (``decode(payload, model_id)``): decode with the model named by the memory."""
    if not model_id:
        raise ModelMismatchError(f"codec {CODEC_ID!r} needs a model id, the memory names none")
    return decode_latent(find_latent_model(model_id), payload)
