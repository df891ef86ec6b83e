"""Abstract art from random Delaunay triangulations (the prototype's training-data kind), and a
cheap near-exact Gaussian fit of such an image derived from its triangles.

An artwork is a random point set in the unit square (the four corners, a few points on each edge,
the rest inside) triangulated with :class:`scipy.spatial.Delaunay`, every triangle filled with
one colour. Coordinates are normalized ``(u, v)`` as everywhere in the package (see
:mod:`gaussvae_ros.core.gaussians`); a pixel takes the colour of the triangle containing its
centre, so the image is exact at any size.

The starting fit (:func:`triangle_gaussians`) gives each triangle one Gaussian with the
triangle's centroid, the covariance of the uniform distribution over the triangle
(``1/12 sum_k (v_k - c)(v_k - c)^T``) and the triangle's colour. To reach exactly N Gaussians the
triangles are first split (:func:`subdivide_triangles`: largest area first, at the midpoint of the
longest edge), which leaves the picture unchanged. That makes a VAE training set in seconds,
without the slow image fitter; ``fit_image(image, init=...)`` can refine it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

from gaussvae_ros.core import morton_order

from gaussvae_ros.core.gaussians import Gaussians

COLOR_MODES = ("random", "gradient")


@dataclass
class DelaunayArt:
    """One artwork.

    Attributes:
        image: uint8 ``[H, W, 3]`` RGB.
        vertices: float64 ``[P, 2]`` normalized ``(u, v)``.
        triangles: int ``[T, 3]`` vertex indices (counter-clockwise or not; orientation is unused).
        colors: float32 ``[T, 3]`` triangle colours in ``[0, 1]``.
        seed: the seed that reproduces it with the same arguments.
    """

    image: np.ndarray
    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    seed: int


def _random_points(rng: np.random.Generator, min_points: int, max_points: int) -> np.ndarray:
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    inner = rng.random((int(rng.integers(min_points, max_points + 1)), 2))
    edges = []
    for axis in (0, 1):
        for side in (0.0, 1.0):
            t = rng.random(int(rng.integers(0, 4)))
            pts = np.empty((t.size, 2))
            pts[:, axis], pts[:, 1 - axis] = t, side
            edges.append(pts)
    return np.concatenate([corners, inner, *edges])


def _triangle_colors(rng: np.random.Generator, centroids: np.ndarray, mode: str) -> np.ndarray:
    if mode == "random":
        return rng.random((centroids.shape[0], 3)).astype(np.float32)
    # "gradient": two random colours blended along a random direction, jittered per triangle.
    a, b = rng.random(3), rng.random(3)
    angle = rng.uniform(0, 2 * np.pi)
    t = centroids @ np.array([np.cos(angle), np.sin(angle)])
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    colors = a + t[:, None] * (b - a) + rng.normal(0.0, 0.08, (centroids.shape[0], 3))
    return np.clip(colors, 0.0, 1.0).astype(np.float32)


def random_delaunay_art(seed: int, height: int = 256, width: int = 256, min_points: int = 4,
                        max_points: int = 100, color_mode: str = "random") -> DelaunayArt:
    """A random triangulated artwork rendered at ``height x width`` (deterministic in ``seed``).

    ``min_points..max_points`` interior points (plus 4 corners and 0-3 points per edge) give
    about twice as many triangles. ``color_mode``: ``random`` (each triangle an independent
    uniform RGB colour) or ``gradient`` (a two-colour gradient in a random direction, jittered).
    """
    if color_mode not in COLOR_MODES:
        raise ValueError(f"unknown color_mode {color_mode!r}; choose one of {COLOR_MODES}")
    if not 0 <= min_points <= max_points:
        raise ValueError(f"need 0 <= min_points <= max_points, got {min_points}, {max_points}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    rng = np.random.default_rng(seed)
    points = _random_points(rng, min_points, max_points)
    tri = Delaunay(points)
    triangles = tri.simplices.astype(np.int64)
    colors = _triangle_colors(rng, points[triangles].mean(axis=1), color_mode)
    cu = (np.arange(width) + 0.5) / width
    cv = (np.arange(height) + 0.5) / height
    centres = np.stack(np.meshgrid(cu, cv), -1).reshape(-1, 2)
    owner = tri.find_simplex(centres)
    assert (owner >= 0).all(), "the triangulation covers the unit square"
    image = np.round(colors[owner] * 255).astype(np.uint8).reshape(height, width, 3)
    return DelaunayArt(image=image, vertices=points, triangles=triangles, colors=colors, seed=int(seed))


def _area(p: tuple, q: tuple, r: tuple) -> float:
    return 0.5 * abs((q[0] - p[0]) * (r[1] - p[1]) - (r[0] - p[0]) * (q[1] - p[1]))


def _dist2(p: tuple, q: tuple) -> float:
    return (q[0] - p[0]) ** 2 + (q[1] - p[1]) ** 2


def subdivide_triangles(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray,
                        count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split triangles until there are exactly ``count``: repeatedly the largest by area, at the
    midpoint of its longest edge, both halves keeping its colour (the picture is unchanged).

    Returns new ``(vertices [P', 2], triangles [count, 3], colors [count, C])``.
    """
    if count < len(triangles):
        raise ValueError(f"cannot subdivide {len(triangles)} triangles into fewer ({count}); "
                         f"use fewer points or more Gaussians")
    verts = [(float(x), float(y)) for x, y in np.asarray(vertices, dtype=np.float64)]
    tris = [tuple(int(i) for i in t) for t in triangles]
    parent = list(range(len(tris)))  # index into the original colours
    heap = [(-_area(verts[a], verts[b], verts[c]), k) for k, (a, b, c) in enumerate(tris)]
    heapq.heapify(heap)
    while len(tris) < count:
        _, k = heapq.heappop(heap)
        a, b, c = tris[k]
        lengths = (_dist2(verts[a], verts[b]), _dist2(verts[b], verts[c]), _dist2(verts[c], verts[a]))
        a, b, c = ((a, b, c), (b, c, a), (c, a, b))[lengths.index(max(lengths))]  # longest edge is (a, b)
        verts.append(((verts[a][0] + verts[b][0]) / 2, (verts[a][1] + verts[b][1]) / 2))
        m = len(verts) - 1
        tris[k] = (a, m, c)
        tris.append((m, b, c))
        parent.append(parent[k])
        for idx in (k, len(tris) - 1):
            p, q, r = tris[idx]
            heapq.heappush(heap, (-_area(verts[p], verts[q], verts[r]), idx))
    return (np.asarray(verts), np.asarray(tris, dtype=np.int64),
            np.asarray(colors, dtype=np.float32)[np.asarray(parent, dtype=np.int64)])


def triangle_gaussians(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray,
                       scale_factor: float = 1.0) -> Gaussians:
    """One Gaussian per triangle: centroid, the triangle's second-moment covariance (standard
    deviations multiplied by ``scale_factor``) and its colour. Normalized blend, ``s1 >= s2``,
    rotation in ``(-pi/2, pi/2]``."""
    v = np.asarray(vertices, dtype=np.float64)[np.asarray(triangles)]  # [T, 3, 2]
    centroid = v.mean(axis=1)
    d = v - centroid[:, None, :]
    cov = np.einsum("tki,tkj->tij", d, d) / 12.0
    a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    radius = np.sqrt(((a - c) / 2) ** 2 + b ** 2)
    lam1 = (a + c) / 2 + radius
    lam2 = np.maximum((a + c) / 2 - radius, 1e-14)
    scale = np.sqrt(np.stack([lam1, lam2], -1)) * scale_factor
    rot = 0.5 * np.arctan2(2 * b, a - c)
    return Gaussians(centroid, scale, rot, np.asarray(colors, dtype=np.float32), blend="normalized")


def delaunay_gaussians(art: DelaunayArt, n_gaussians: int = 512, morton: bool = True) -> Gaussians:
    """The near-exact starting fit of ``art`` with exactly ``n_gaussians`` Gaussians, Morton-sorted."""
    verts, tris, cols = subdivide_triangles(art.vertices, art.triangles, art.colors, n_gaussians)
    g = triangle_gaussians(verts, tris, cols)
    if morton:
        g = g.take(morton_order(g.xy))
    return g


def make_delaunay_param_set(count: int, seed: int = 0, n_gaussians: int = 512, min_points: int = 4,
                            max_points: int = 100, color_mode: str = "random",
                            progress=None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` artworks' starting fits as parameters ``[count, n_gaussians, 8]`` (Morton order) and
    their seeds ``[count]`` (``seed + i``; :func:`random_delaunay_art` reproduces each image).
    Images are rendered at 8x8 only, since the fit does not depend on the size. ``progress(done)``
    is called after each artwork (about 100 per second on one core)."""
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    seeds = np.arange(seed, seed + count, dtype=np.int64)
    params = np.empty((count, n_gaussians, 8), dtype=np.float32)
    for i, s in enumerate(seeds):
        art = random_delaunay_art(int(s), 8, 8, min_points, max_points, color_mode)
        params[i] = delaunay_gaussians(art, n_gaussians).to_array()
        if progress is not None:
            progress(i + 1)
    return params, seeds
