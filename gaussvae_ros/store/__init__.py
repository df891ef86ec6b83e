"""A robot's visual memory in SQLite: encoded camera frames indexed by time and pose.

Import everything from here::

    from gaussvae_ros.store import Store, Memory, Pose, CameraIntrinsics, RetentionPolicy

See :mod:`.store` for usage, durability and thread safety, :mod:`.schema` for the file layout and
migrations, :mod:`.retention` for how a full store forgets and :mod:`.export` for contact sheets
and pose maps. ROS-free: plain Python + SQLite. A ground-floor room: imports nothing else of the
package (the nodes and applications read it through :class:`Store`'s API, never its tables).
"""

from .records import (DEFAULT_CODEC, CameraIntrinsics, InsertResult, Memory, StoredMemory, Pose, Profile, ProfileTotals,
                      StoreBusyError, StoreError, StoreStats, Stream, StreamStats, seconds_to_ns)
from .pages import page_size_for_payload
from .retention import RetentionPolicy, RetentionReport, apply_retention
from .schema import SCHEMA_VERSION
from .store import Store

__all__ = [
    "DEFAULT_CODEC", "SCHEMA_VERSION", "CameraIntrinsics", "InsertResult", "Memory", "StoredMemory", "Pose", "ProfileTotals",
    "Profile", "RetentionPolicy", "RetentionReport", "Store", "StoreBusyError", "StoreError", "StoreStats", "Stream", "StreamStats",
    "apply_retention", "page_size_for_payload", "seconds_to_ns",
]
