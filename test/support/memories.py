"""Shared helpers for the store tests: synthetic memories and brute-force numpy references."""

from __future__ import annotations

import math

import numpy as np

from gaussvae_ros.store import CameraIntrinsics, Memory, Pose

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND

KITTI_K = CameraIntrinsics((718.856, 0.0, 607.1928, 0.0, 718.856, 185.2157, 0.0, 0.0, 1.0), "plumb_bob",
                           (0.0, 0.0, 0.0, 0.0, 0.0))


def yaw_quaternion(angle: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2))


def random_memories(seed: int, count: int, streams=(("/cam", "front"), ("/cam", "rear"), ("/other", "front")),
                    pose_fraction: float = 0.85, extent_m: float = 60.0) -> list[Memory]:
    """Memories from a few streams: clustered positions (with exact duplicates), random orientations,
    some without pose, payloads of varied sizes, stamps with collisions across streams."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-extent_m / 2, extent_m / 2, (6, 3)) * [1, 1, 0.1]
    memories = []
    stamps = {s: set() for s in streams}
    for i in range(count):
        stream = streams[int(rng.integers(len(streams)))]
        while True:  # unique per stream, often shared across streams
            stamp = T0 + int(rng.integers(0, count * 2)) * (SECOND // 10)
            if stamp not in stamps[stream]:
                stamps[stream].add(stamp)
                break
        pose = None
        if rng.random() < pose_fraction:
            if i > 0 and rng.random() < 0.05 and memories[-1].pose is not None:
                position = memories[-1].pose.position  # exact duplicate position
            else:
                position = tuple((centres[int(rng.integers(len(centres)))] + rng.normal(0, 3, 3) * [1, 1, 0.2]).tolist())
            q = rng.normal(size=4)
            q = q / np.linalg.norm(q) * rng.uniform(0.5, 2.0)  # stored as received, not necessarily unit
            pose = Pose(position, tuple(q.tolist()))
        memories.append(Memory(
            stamp_ns=stamp, topic=stream[0], camera_frame_id=stream[1],
            payload=rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8).tobytes(),
            width=1226, height=370, encoding="mono8", pose=pose, pose_frame_id="odom" if pose else "",
            intrinsics=KITTI_K if i % 3 else None, psnr=float(rng.uniform(20, 40)), ssim=float(rng.uniform(0.5, 1)),
        ))
    return memories


class Reference:
    """Brute-force answers over the stored memories (ids from the insert result)."""

    def __init__(self, memories: list[Memory], ids, stream_ids: dict[tuple[str, str], int]) -> None:
        self.memories = {i: m for i, m in zip(ids, memories)}
        self.ids = np.array(list(ids))
        self.stamp = np.array([m.stamp_ns for m in memories], dtype=np.int64)
        self.stream = np.array([stream_ids[(m.topic, m.camera_frame_id)] for m in memories])
        self.has_pose = np.array([m.pose is not None for m in memories])
        self.xyz = np.array([m.pose.position if m.pose else (np.nan,) * 3 for m in memories])
        self.quat = np.array([m.pose.orientation if m.pose else (np.nan,) * 4 for m in memories])
        self.topic = np.array([m.topic for m in memories])
        self.frame = np.array([m.camera_frame_id for m in memories])

    def stream_mask(self, topic=None, camera_frame_id=None) -> np.ndarray:
        mask = np.ones(len(self.ids), bool)
        if topic is not None:
            mask &= self.topic == topic
        if camera_frame_id is not None:
            mask &= self.frame == camera_frame_id
        return mask

    def by_time(self, lo, hi, order="asc", limit=None, topic=None, camera_frame_id=None) -> list[int]:
        mask = self.stream_mask(topic, camera_frame_id) & (self.stamp >= lo) & (self.stamp <= hi)
        idx = np.flatnonzero(mask)
        idx = idx[np.lexsort((self.stream[idx], self.stamp[idx]))]  # by stamp, then stream
        if order == "desc":
            idx = idx[::-1]
        return self.ids[idx[:limit]].tolist()

    def squared_distances(self, point) -> np.ndarray:
        x, y, z = point
        # Same operation order as the store's SQL, so equal doubles and equal ties.
        return (self.xyz[:, 0] - x) * (self.xyz[:, 0] - x) + (self.xyz[:, 1] - y) * (self.xyz[:, 1] - y) \
            + (self.xyz[:, 2] - z) * (self.xyz[:, 2] - z)

    def orientation_mask(self, orientation, max_angle) -> np.ndarray:
        if orientation is None:
            return np.ones(len(self.ids), bool)
        q = np.asarray(orientation, float) / np.linalg.norm(orientation)
        cosine = np.abs(self.quat @ q) / np.linalg.norm(self.quat, axis=1)
        angle = 2 * np.arccos(np.clip(cosine, 0.0, 1.0))
        return angle <= max_angle

    def matching(self, point, topic=None, camera_frame_id=None, orientation=None, max_angle=None):
        d2 = self.squared_distances(point)
        mask = self.has_pose & self.stream_mask(topic, camera_frame_id) & self.orientation_mask(orientation, max_angle)
        idx = np.flatnonzero(mask)
        idx = idx[np.lexsort((self.ids[idx], d2[idx]))]  # by distance, then id
        return self.ids[idx], d2[idx]

    def within_radius(self, point, radius, **filters) -> list[int]:
        ids, d2 = self.matching(point, **filters)
        return ids[d2 <= radius * radius].tolist()

    def nearest(self, point, k, **filters) -> list[int]:
        return self.matching(point, **filters)[0][:k].tolist()
