"""A robot's visual memory in SQLite: encoded camera frames indexed by time and pose.

Import everything from here::

    from gaussvae_ros.store import Store, Memory, Pose, CameraIntrinsics, RetentionPolicy

See :mod:`.store` for usage, durability and thread safety, :mod:`.schema` for the file layout and
migrations, and :mod:`.retention` for how a full store forgets. ROS-free: plain Python + SQLite.
"""

from .records import (DEFAULT_CODEC, CameraIntrinsics, InsertResult, Memory, MemoryRecord, Pose, Profile,
                      StoreError, StoreStats, Stream, StreamStats, seconds_to_ns)
from .pages import page_size_for_payload
from .retention import RetentionPolicy, RetentionReport, apply_retention
from .schema import SCHEMA_VERSION
from .store import Store

__all__ = [
    "DEFAULT_CODEC", "SCHEMA_VERSION", "CameraIntrinsics", "InsertResult", "Memory", "MemoryRecord", "Pose",
    "Profile", "RetentionPolicy", "RetentionReport", "Store", "StoreError", "StoreStats", "Stream", "StreamStats",
    "apply_retention", "page_size_for_payload", "seconds_to_ns",
]
