"""Pictures of a store's memories: a contact sheet of recalled images and a map of where they were
taken (``gaussvae db export``, the demo). The images come decoded: rendering a memory is the codec
room's (:func:`gaussvae_ros.codecs.render_memory`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["contact_sheet", "pose_map"]


def contact_sheet(images: list[np.ndarray], labels: list[str], columns: int = 4, tile_width: int = 320):
    """A grid of images scaled to ``tile_width`` wide, each with a label underneath (a Pillow RGB image)."""
    if not images:
        raise ValueError("no images for a contact sheet")
    tiles = []
    for image in images:
        tile = Image.fromarray(image).convert("RGB")
        tiles.append(tile.resize((tile_width, max(1, round(tile.height * tile_width / tile.width))), Image.BILINEAR))
    label_h = 14
    cell_h = max(t.height for t in tiles) + label_h + 4
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (columns * (tile_width + 4) + 4, rows * cell_h + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        x, y = 4 + (i % columns) * (tile_width + 4), 4 + (i // columns) * cell_h
        sheet.paste(tile, (x, y))
        draw.text((x, y + tile.height + 1), label, fill="black")
    return sheet


def pose_map(records: list, path: Path, title: str = "") -> int:
    """Write a PNG map of the records' positions coloured by time; returns how many were drawn.

    The plot shows the two axes along which the positions spread most (metres), so a ground robot's
    track appears from above whatever its frame convention (x-y for ``odom``, x-z for camera optical frames).
    """
    import matplotlib  # imported when a map is drawn: matplotlib takes ~0.4 s to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    posed = [r for r in records if r.pose is not None]
    if not posed:
        raise ValueError("no stored memory with a pose to draw")
    xyz = np.array([r.pose.position for r in posed])
    t = np.array([r.stamp_ns for r in posed], dtype=np.float64)
    t = (t - t.min()) * 1e-9
    axes = sorted(np.argsort(-np.ptp(xyz, axis=0))[:2])
    names = "xyz"
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    try:
        ax.plot(xyz[:, axes[0]], xyz[:, axes[1]], color="0.8", linewidth=1, zorder=1)
        points = ax.scatter(xyz[:, axes[0]], xyz[:, axes[1]], c=t, cmap="viridis", s=25, zorder=2)
        fig.colorbar(points, ax=ax, label="time since first memory (s)")
        ax.set_xlabel(f"{names[axes[0]]} (m)")
        ax.set_ylabel(f"{names[axes[1]]} (m)")
        ax.set_aspect("equal", adjustable="datalim")
        frames = sorted({r.pose_frame_id for r in posed if r.pose_frame_id})
        ax.set_title(title or f"{len(posed)} memories" + (f" in {', '.join(frames)}" if frames else ""))
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return len(posed)
