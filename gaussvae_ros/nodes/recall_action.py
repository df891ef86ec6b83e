"""The recall node's ``recall_memories`` action (gaussvae_ros_interfaces/RecallMemories).

The same selection as the ``recall`` service (ids, or an embedded time or pose query; at most
``max_action_images`` memories), but each image goes out as feedback as soon as it is decoded
(``id``, ``image``, ``camera_info``, ``index`` of ``total``, ``total_bytes`` so far), so a large
recall neither builds one huge response nor blocks the service. Between two images the server
checks for a cancel request and ends the goal canceled with what it sent. ``max_total_bytes``
(0 = the server's ``max_action_bytes``) bounds the image bytes of one goal: the image that would
pass it is not sent, the result says ``truncated``. With ``publish`` every image also goes out on
``recalled/image`` (+ ``/compressed``) and ``recalled/camera_info``.

Feedback is reliable with a history of ``action_feedback_depth`` messages: a client that falls
further behind loses the oldest; the result's ``ids`` say which memories were sent, and the
``recall`` service fetches any of them again. One goal runs at a time.
"""

from __future__ import annotations

import threading
import time

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.qos import QoSProfile, ReliabilityPolicy

from gaussvae_ros_interfaces.action import RecallMemories

from gaussvae_ros.store import StoreError

from .convert import camera_info_from_intrinsics, image_message, ns_to_time, output_size
from .params import ParamSpec, check_range
from .queries import RequestError

__all__ = ["ACTION_PARAMETERS", "RecallAction", "check_action_parameters"]

ACTION_PARAMETERS = (
    ParamSpec("max_action_images", 10_000, "most memories one recall_memories goal selects"),
    ParamSpec("max_action_bytes", 1 << 30, "default (and largest) image bytes of one recall_memories goal, bytes"),
    ParamSpec("action_feedback_depth", 10, "history depth of the recall_memories feedback", True),
)


def check_action_parameters(problems: list, values: dict) -> None:
    check_range(problems, values, "max_action_images", 1, 10_000_000)
    check_range(problems, values, "max_action_bytes", 1)
    check_range(problems, values, "action_feedback_depth", 1, 10_000)


class RecallAction:
    """``recall_memories`` on ``node``: ``open_store()``, ``select(store, goal, max_images)``,
    ``render(record, width, height)`` and ``outputs`` (:class:`~.recall_outputs.RecallOutputs`)
    are the recall node's own."""

    def __init__(self, node, open_store, select, render, outputs, values: dict) -> None:
        self._node, self._open_store, self._select, self._render = node, open_store, select, render
        self._outputs, self._values = outputs, values
        qos = QoSProfile(depth=int(values["action_feedback_depth"]), reliability=ReliabilityPolicy.RELIABLE)
        self._server = ActionServer(
            node, RecallMemories, "recall_memories", execute_callback=self._execute,
            goal_callback=lambda goal: GoalResponse.ACCEPT, cancel_callback=lambda handle: CancelResponse.ACCEPT,
            feedback_pub_qos_profile=qos, callback_group=ReentrantCallbackGroup())
        self._one_at_a_time = threading.Lock()  # goals run as executor tasks, outside any callback group

    def destroy(self) -> None:
        self._server.destroy()

    def _execute(self, handle):
        with self._one_at_a_time:
            return self._run(handle)

    def _run(self, handle):
        goal, result = handle.request, RecallMemories.Result()
        started = time.perf_counter()
        try:
            limit = int(self._values["max_action_bytes"])
            if goal.max_total_bytes:
                if goal.max_total_bytes > limit:
                    raise RequestError(f"max_total_bytes={goal.max_total_bytes} exceeds this server's "
                                       f"max_action_bytes={limit}")
                limit = int(goal.max_total_bytes)
            max_side = int(self._values["max_side"])
            if goal.width > max_side or goal.height > max_side:
                raise RequestError(f"requested size {goal.width}x{goal.height} exceeds max_side={max_side} px")
            records, note = self._select(self._open_store(), goal, int(self._values["max_action_images"]))
        except (RequestError, ValueError, StoreError) as exc:
            result.success, result.message = False, str(exc)
            handle.abort()
            return result
        total = len(records)
        for index, record in enumerate(records):
            if handle.is_cancel_requested:
                handle.canceled()
                result.success = False
                result.message = f"canceled after {len(result.ids)} of {total} images"
                return result
            w, h = output_size(record.width, record.height, goal.width, goal.height)
            if w > max_side or h > max_side:
                result.failed_ids.append(record.id)
                result.failures.append(f"memory {record.id} would be recalled at {w}x{h} px, over max_side={max_side}")
                continue
            try:
                pixels = self._render(record, w, h)
            except ValueError as exc:  # this memory only
                result.failed_ids.append(record.id)
                result.failures.append(f"cannot decode memory {record.id} (codec {record.codec!r}): {exc}")
                continue
            size = int(pixels.nbytes)
            if result.total_bytes + size > limit:
                result.truncated = True
                break
            header = _header(record)
            feedback = RecallMemories.Feedback(id=int(record.id), index=index + 1, total=total)
            feedback.image = image_message(pixels, header)
            feedback.camera_info = camera_info_from_intrinsics(record.intrinsics, record.width, record.height,
                                                               header, w, h)
            result.total_bytes += size
            feedback.total_bytes = result.total_bytes
            handle.publish_feedback(feedback)
            if goal.publish:
                self._outputs.publish(feedback.image, feedback.camera_info)
            result.ids.append(record.id)
        sent = len(result.ids)
        if total and not sent and (result.truncated or result.failed_ids):
            result.success = False
            result.message = (f"the first image alone exceeds max_total_bytes={limit}" if result.truncated else
                              f"none of the {total} memories could be decoded: {result.failures[0]}")
            handle.abort()
            return result
        result.success = True
        result.message = (f"sent {sent} of {total} images, {result.total_bytes} bytes, in "
                          f"{(time.perf_counter() - started) * 1e3:.0f} ms" + (f" ({note})" if note else "")
                          + ("; stopped at the byte limit" if result.truncated else "")
                          + (f"; {len(result.failed_ids)} could not be decoded" if result.failed_ids else ""))
        handle.succeed()
        return result


def _header(record):
    from std_msgs.msg import Header

    return Header(stamp=ns_to_time(record.stamp_ns), frame_id=record.camera_frame_id)
