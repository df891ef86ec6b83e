"""Rate-distortion evaluation: mean PSNR / SSIM / bytes per method at fixed byte budgets.

Each image is resized (Lanczos, Pillow, on uint8) to a fixed long side; every method then gives
its best operating point under each budget (:mod:`gaussvae_ros.eval.methods`), which is decoded and
scored against that uint8 reference with scikit-image (PSNR and SSIM, data range 255, SSIM over
colour channels). An image a method cannot fit is scored at the method's smallest output and
counted in ``over_budget``. The report is plain JSON-able data; :func:`plot_rd` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from gaussvae_ros.core.image import working_image

from .methods import ImageContext, Method, psnr_uint8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")

#: Long side, in pixels, the images are evaluated at.
DEFAULT_LONG_SIDE = 192


def prepare_image(image: Image.Image | np.ndarray, long_side: int = DEFAULT_LONG_SIDE) -> np.ndarray:
    """A Pillow image or array -> uint8 ``[H, W]`` (gray) or ``[H, W, 3]`` (RGB; alpha and palettes
    dropped, 16-bit gray scaled to 8 bits), resized with Lanczos on uint8 so its long side is
    ``long_side`` (down or up)."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if im.mode in ("L", "I;16", "I;16B", "I;16L", "I", "F", "1", "LA"):
        im = im.convert("L") if im.mode in ("1", "LA") else im
        if im.mode != "L":  # 16-bit / float gray: scale to 8 bits by the value range of the type
            array = np.asarray(im, dtype=np.float64)
            peak = 1.0 if im.mode == "F" else (65535.0 if array.max() > 255 else 255.0)
            im = Image.fromarray(np.clip(np.rint(array / peak * 255.0), 0, 255).astype(np.uint8))
    else:
        im = im.convert("RGB")
    pixels = np.asarray(im, dtype=np.uint8)
    return working_image(pixels, long_side, resample="lanczos", enlarge=True).copy()  # Lanczos on uint8, as measured


def list_images(paths) -> list[Path]:
    """Image files named in ``paths``: files as given, directories expanded (sorted, not recursive)."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such image file or directory: {path}")
    if not found:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return found


def load_image(path: str | Path, long_side: int = DEFAULT_LONG_SIDE) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            return prepare_image(im, long_side)
    except OSError as exc:
        raise ValueError(f"{path}: unreadable image ({exc})") from None


def ssim_uint8(reference: np.ndarray, test: np.ndarray) -> float:
    """scikit-image SSIM of two uint8 images (data range 255; channel_axis for RGB)."""
    if min(reference.shape[:2]) < 7:
        raise ValueError(f"SSIM needs at least 7x7 pixels, got {reference.shape[1]}x{reference.shape[0]}")
    return float(structural_similarity(reference, test, data_range=255,
                                       channel_axis=2 if reference.ndim == 3 else None))


@dataclass
class Score:
    image: str
    method: str
    budget: int
    psnr: float
    ssim: float
    nbytes: int
    over_budget: bool
    setting: dict

    def to_dict(self) -> dict:
        return {"image": self.image, "psnr": self.psnr, "ssim": self.ssim, "bytes": self.nbytes,
                "over_budget": self.over_budget, **self.setting}


def score(ctx: ImageContext, method: Method, budget: int) -> Score:
    encoded = method.compress(ctx, budget)
    if encoded.image.shape != ctx.reference.shape or encoded.image.dtype != np.uint8:
        raise ValueError(f"{method.name} returned a {encoded.image.dtype} {encoded.image.shape} image for "
                         f"{ctx.name}, expected uint8 {ctx.reference.shape}")
    return Score(ctx.name, method.name, int(budget), psnr_uint8(ctx.reference, encoded.image),
                 ssim_uint8(ctx.reference, encoded.image), int(encoded.nbytes), encoded.nbytes > budget,
                 dict(encoded.setting))


def summarize(scores: list[Score], budgets, methods) -> dict:
    """``{"<budget>": {"<method>": {"psnr", "ssim", "bytes", "over_budget"}}}``: means over images,
    ``over_budget`` an image count."""
    out: dict[str, dict] = {}
    for budget in budgets:
        entry = {}
        for name in methods:
            rows = [s for s in scores if s.budget == budget and s.method == name]
            if not rows:
                continue
            entry[name] = {"psnr": round(float(np.mean([s.psnr for s in rows])), 4),
                           "ssim": round(float(np.mean([s.ssim for s in rows])), 5),
                           "bytes": round(float(np.mean([s.nbytes for s in rows])), 1),
                           "over_budget": int(sum(s.over_budget for s in rows))}
        out[str(budget)] = entry
    return out


def summarize_within_budget(scores: list[Score], budgets, methods) -> dict:
    """Like :func:`summarize` over the images that fit only, with their count as ``images``
    (a method with no image under a budget is left out of that budget)."""
    inside = [s for s in scores if not s.over_budget]
    out = summarize(inside, budgets, methods)
    for budget, entry in out.items():
        for name, row in entry.items():
            row.pop("over_budget")
            row["images"] = sum(1 for s in inside if s.budget == int(budget) and s.method == name)
    return out


def evaluate(images: list[tuple[str, np.ndarray]], methods: list[Method], budgets, fit_options=None,
             progress=None, per_image: bool = False) -> dict:
    """Evaluate ``methods`` on ``images`` (``(name, uint8 reference)``) at each byte budget.

    ``progress(step, total, text)`` is called after each (image, method). Returns the report:
    ``{"budgets": summarize(...), "images": [...], "methods": [...], "within_budget": ...}`` (the
    means over only the images each method fits, see :func:`summarize_within_budget`) plus
    ``"per_image"`` scores when asked.
    """
    budgets = sorted({int(b) for b in budgets})
    if not budgets or budgets[0] <= 0:
        raise ValueError(f"budgets must be positive byte counts, got {budgets}")
    scores: list[Score] = []
    total, step = len(images) * len(methods), 0
    described = []
    for name, reference in images:
        ctx = ImageContext(name, reference, fit_options)
        described.append({"name": name, "width": ctx.width, "height": ctx.height, "channels": ctx.channels})
        for method in methods:
            scores += [score(ctx, method, budget) for budget in budgets]
            step += 1
            if progress is not None:
                progress(step, total, f"{name} {method.name}")
    names = [m.name for m in methods]
    report = {"budgets": summarize(scores, budgets, names), "images": described, "methods": names,
              "within_budget": summarize_within_budget(scores, budgets, names)}
    if per_image:
        report["per_image"] = {str(b): {m.name: [s.to_dict() for s in scores if s.budget == b and s.method == m.name]
                                        for m in methods} for b in budgets}
    return report


def format_table(report: dict) -> str:
    """The report's means as a fixed-width text table (last columns: PSNR / SSIM over the images that fit)."""
    lines = [f"{'budget':>7}  {'method':<10} {'PSNR dB':>8} {'SSIM':>7} {'bytes':>8} {'over':>5}   "
             f"{'fitting: n':>10} {'PSNR dB':>8} {'SSIM':>7}"]
    within = report.get("within_budget", {})
    for budget, entry in report["budgets"].items():
        for name, row in entry.items():
            line = (f"{budget:>7}  {name:<10} {row['psnr']:8.2f} {row['ssim']:7.4f} {row['bytes']:8.1f} "
                    f"{row['over_budget']:5d}   ")
            inside = within.get(budget, {}).get(name)
            line += (f"{inside['images']:10d} {inside['psnr']:8.2f} {inside['ssim']:7.4f}" if inside
                     else f"{0:10d} {'-':>8} {'-':>7}")
            lines.append(line)
    return "\n".join(lines)


def plot_rd(report: dict, path: str | Path, title: str | None = None) -> Path:
    """Rate-distortion PNG: PSNR and SSIM against mean bytes, one line per method. Points where some
    image was over budget are drawn hollow."""
    import matplotlib  # only when a plot is asked for: matplotlib takes ~0.4 s to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = report["budgets"]
    methods = [m for m in report.get("methods", []) if any(m in e for e in budgets.values())]
    methods += sorted({m for e in budgets.values() for m in e} - set(methods))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for metric, ax in zip(("psnr", "ssim"), axes):
        for i, name in enumerate(methods):
            rows = [e[name] for _, e in sorted(budgets.items(), key=lambda kv: int(kv[0])) if name in e]
            x = [r["bytes"] for r in rows]
            y = [r[metric] for r in rows]
            color = f"C{i}"
            ax.plot(x, y, "-", color=color, label=name)
            for r, xi, yi in zip(rows, x, y):
                ax.plot(xi, yi, "o", color=color, markerfacecolor="none" if r["over_budget"] else color)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes per image (mean)")
        ax.set_ylabel("PSNR (dB)" if metric == "psnr" else "SSIM")
        ax.grid(True, alpha=0.3)
    for budget in budgets:
        for ax in axes:
            ax.axvline(int(budget), color="0.8", lw=0.8, zorder=0)
    axes[0].legend(loc="lower right")
    n = len(report.get("images", []))
    fig.suptitle(title or f"Rate-distortion, {n} image{'s' if n != 1 else ''} (hollow: some image over budget)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
