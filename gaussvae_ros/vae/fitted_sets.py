"""Training sets of fitted Gaussians from real images: photographs and robot recordings.

A set is a folder of shards ``shard_00000.npz``, ... each holding ``params [M, N, 8]`` (the layout
of :meth:`gaussvae_ros.core.Gaussians.to_array`, Morton-sorted, grey frames replicated to RGB so the
prototype's 8-channel models read them) and ``keys [M]`` naming the source of each sample.
:func:`gaussvae_ros.vae.data.load_param_set` reads the folder. Building is resumable: samples whose
key is in a finished shard are skipped, so a large set can be built across several runs; an
interrupted run (Ctrl-C, an error) writes the shard it was filling before it stops, and images too
small to fit are listed in ``skipped.txt`` so they are not fitted again. ``settings.json`` holds
what the samples were made with (Gaussian count, fitting size and iterations): resuming with other
settings is refused instead of mixing them in one folder.

Sources:

* :func:`photo_views`: multi-scale crops and flips of the colour photographs scikit-image ships
  (a handful of photos make thousands of distinct views).
* :func:`bag_frames`: frames of a rosbag2 recording (every ``every``-th frame of each image topic).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from gaussvae_ros.bag.reader import BagReader, Frame
from gaussvae_ros.core import fit_image, morton_order
from gaussvae_ros.core.image import working_image

#: scikit-image's colour photographs (bundled with the package, no download).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


def photo_views(count: int, long_side: int = 128, seed: int = 0,
                photos: Iterable[str] = PHOTOS) -> Iterator[tuple[str, np.ndarray]]:
    """``count`` views ``(key, uint8 [H, W, 3])``: a random square-ish crop covering 30-100 % of a
    photo's short side, optionally mirrored, resized so its long side is ``long_side``."""

    images = {name: np.asarray(getattr(data, name)())[:, :, :3] for name in photos}
    names = sorted(images)
    rng = np.random.default_rng(seed)
    for index in range(count):
        name = names[int(rng.integers(len(names)))]
        image = images[name]
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.3, 1.0))
        aspect = rng.uniform(0.75, 1.33)
        ch, cw = min(h, int(side / np.sqrt(aspect))), min(w, int(side * np.sqrt(aspect)))
        y0, x0 = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        crop = image[y0:y0 + ch, x0:x0 + cw]
        flip = bool(rng.integers(2))
        if flip:
            crop = crop[:, ::-1]
        scale = long_side / max(ch, cw)
        size = (max(8, round(cw * scale)), max(8, round(ch * scale)))
        view = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.LANCZOS))
        yield f"photo:{seed}:{index}:{name}:{y0},{x0},{ch},{cw}:{int(flip)}", view


def bag_frames(path: str | Path, topics: Iterable[str] | None = None, every: int = 1,
               long_side: int = 256, damage: list | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Frames ``(key, image)`` of a recording, every ``every``-th per image topic, at ``long_side``.

    Damaged parts of the recording are read past; when the recording has been read to its end,
    its :meth:`~gaussvae_ros.bag.reader.BagReader.damage_report` is appended to ``damage`` (if given
    and anything was damaged).
    """

    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    seen: dict[str, int] = {}
    with BagReader(path) as bag:
        for item in bag.frames(list(topics) if topics else None):
            if not isinstance(item, Frame):
                continue  # unreadable messages are reported by the reader and skipped
            n = seen.get(item.topic, 0)
            seen[item.topic] = n + 1
            if n % every == 0:
                yield f"bag:{Path(path).name}:{item.topic}:{item.stamp_ns}", working_image(item.image, long_side)
        report = bag.damage_report(list(topics) if topics else bag.image_topics)
        if report is not None and damage is not None:
            damage.append(report)


SETTINGS_FILE = "settings.json"
SKIPPED_FILE = "skipped.txt"


def _shard_keys(folder: Path) -> set[str]:
    """Keys of the samples in ``folder``'s finished shards (ValueError naming an unreadable shard)."""
    keys: set[str] = set()
    for shard in sorted(folder.glob("shard_*.npz")):
        try:
            with np.load(shard, allow_pickle=False) as data:
                keys.update(str(k) for k in data["keys"])
        except Exception as exc:  # noqa: BLE001 -- zip, zlib, header and key errors alike: a damaged shard
            raise ValueError(f"{shard}: unreadable shard ({type(exc).__name__}: {exc}); move it out of the folder "
                             f"and run again to refit its samples") from exc
    return keys


def _check_settings(folder: Path, settings: dict, shards: list[Path]) -> bool:
    """Refuse a folder whose samples were made with other ``settings``; True when the settings still
    have to be recorded (with the first shard of a folder that has none yet). A folder of shards
    from before ``settings.json`` is checked for its Gaussian count only, the rest is unknown."""
    path = folder / SETTINGS_FILE
    if not path.exists():
        for shard in shards[:1]:  # an older folder: the count at least must agree
            with np.load(shard, allow_pickle=False) as data:
                count = int(data["params"].shape[1])
            if count != settings.get("n_gaussians"):
                raise ValueError(f"{folder} holds samples of {count} Gaussians, this run asks for "
                                 f"{settings.get('n_gaussians')}: choose another folder")
        return not shards
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc
    changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
    if changed:
        raise ValueError(f"{folder} holds samples made with {', '.join(f'{k}={stored.get(k)!r}' for k in changed)}, "
                         f"this run asks for {', '.join(f'{k}={settings.get(k)!r}' for k in changed)}: "
                         f"choose another folder")
    return False


def _next_shard_index(shards: list[Path]) -> int:
    """One past the highest shard number (a shard moved out of the middle leaves a gap, never a clash)."""
    numbers = [int(p.stem.split("_")[1]) for p in shards if p.stem.split("_")[1].isdigit()]
    return max(numbers, default=-1) + 1


def _as_sample(gaussians) -> np.ndarray:

    g = gaussians.take(morton_order(gaussians.xy))
    params = g.to_array()
    if g.channels == 1:
        params = np.concatenate([params, params[:, 5:6], params[:, 5:6]], axis=1)
    return params.astype(np.float32)


def build_fitted_set(items: Iterable[tuple[str, np.ndarray]], folder: str | Path, *, n_gaussians: int = 512,
                     shard_size: int = 64, fit_overrides: dict | None = None,
                     progress: Callable[[int, int], None] | None = None, settings: dict | None = None) -> dict:
    """Fit every ``(key, image)`` not yet in ``folder`` and append them in shards of ``shard_size``.

    Images that fit to fewer than ``n_gaussians`` Gaussians (tiny images) are skipped, counted and
    listed in ``skipped.txt``. ``settings``: what else made the samples (e.g. ``long_side``), kept
    in ``settings.json`` with ``n_gaussians`` and the fit overrides (threads aside) and compared
    on every later run (ValueError if they differ). Returns a summary: ``fitted``,
    ``skipped_existing``, ``skipped_small``, ``samples`` (total in the folder), ``shards``,
    ``mean_psnr`` of this run's fits.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made_with = {"n_gaussians": int(n_gaussians),
                 **{k: v for k, v in (fit_overrides or {}).items() if k != "threads"}, **(settings or {})}
    existing = sorted(folder.glob("shard_*.npz"))
    done = _shard_keys(folder)  # first: a damaged shard is named before anything else is read
    record_settings = _check_settings(folder, made_with, existing)
    skipped_path = folder / SKIPPED_FILE
    done |= set(skipped_path.read_text().split("\n")) - {""} if skipped_path.exists() else set()
    shard_index = _next_shard_index(existing)
    pending_keys: list[str] = []
    pending: list[np.ndarray] = []
    psnrs: list[float] = []
    summary = {"fitted": 0, "skipped_existing": 0, "skipped_small": 0}

    def flush() -> None:
        nonlocal shard_index, pending_keys, pending, record_settings
        if not pending:
            return
        if record_settings:  # with the folder's first samples, not before (a failed first run leaves no claim)
            (folder / SETTINGS_FILE).write_text(json.dumps(made_with, indent=2, sort_keys=True))
            record_settings = False
        target = folder / f"shard_{shard_index:05d}.npz"
        tmp = folder / f".shard_{shard_index:05d}.tmp.npz"
        np.savez(tmp, params=np.stack(pending), keys=np.array(pending_keys))
        tmp.replace(target)  # a shard appears whole or not at all
        shard_index += 1
        pending_keys, pending = [], []

    try:
        for index, (key, image) in enumerate(items):
            if key in done:
                summary["skipped_existing"] += 1
                continue
            result = fit_image(image, n_gaussians=n_gaussians, **(fit_overrides or {}))
            done.add(key)
            if len(result.gaussians) != n_gaussians:
                summary["skipped_small"] += 1
                with open(skipped_path, "a") as fh:
                    fh.write(key + "\n")
                continue
            pending_keys.append(key)
            pending.append(_as_sample(result.gaussians))
            psnrs.append(result.psnr)
            summary["fitted"] += 1
            if progress is not None:
                progress(index + 1, summary["fitted"])
            if len(pending) >= shard_size:
                flush()
    finally:  # interrupted or not, the fits made so far are kept
        flush()
    shards = sorted(folder.glob("shard_*.npz"))
    summary.update({"samples": len(_shard_keys(folder)), "shards": len(shards),
                    "mean_psnr": float(np.mean(psnrs)) if psnrs else None, "folder": str(folder)})
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
