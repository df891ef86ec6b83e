"""Reading robot recordings without a ROS runtime.

* :mod:`.images`: ``sensor_msgs/Image`` and ``CompressedImage`` messages to numpy arrays.
* :mod:`.poses`: a pose track from ``nav_msgs/Odometry`` / ``geometry_msgs/PoseStamped`` with
  nearest / interpolated lookup at a stamp.
* :mod:`.keyframes`: the per-camera policy deciding which frames become memories.
* :mod:`.reader`: rosbag2 folders (sqlite3 or mcap) read with ``rosbags``.

The first three work on plain message attributes, so the live ROS nodes use them on rclpy
messages exactly as the offline replay uses them on ``rosbags`` messages. A ground-floor room:
imports nothing else of the package.
"""

from .images import ImageDecodeError, compressed_image_to_numpy, image_message_to_numpy, message_to_numpy

__all__ = [
    "ImageDecodeError",
    "compressed_image_to_numpy",
    "image_message_to_numpy",
    "message_to_numpy",
]
