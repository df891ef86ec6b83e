"""``gaussvae_encoder_managed``: the encoder node as a lifecycle (managed) node.

The same node as ``gaussvae_encoder`` (:class:`~.encoder_node.EncoderNode`: topics, parameters,
worker), driven by the ROS 2 lifecycle state machine (``~/change_state``, ``~/get_state``):

    unconfigured  frames that arrive are dropped and counted; the worker waits
    configure     loads the payload codec (and its model, for ``vae-latent``) again from the
                  parameters and forgets every camera's keyframe state -> inactive
    inactive      frames that arrive are dropped and counted (``frames_dropped`` in /diagnostics,
                  ``dropped`` and ``dropped_inactive`` in :meth:`counters`)
    activate      frames are queued and encoded as the plain node does, starting with the ones
                  still queued
    deactivate    encoding pauses: the fit in progress finishes and is published, the frames
                  queued stay queued for the next activate, new frames are dropped
    cleanup       forgets keyframe state and warm starts -> unconfigured (queued frames stay)

The plain ``gaussvae_encoder`` stays what ``ros2 run`` and the launch files start by default;
``gaussvae.launch.py managed:=true`` starts this one.
"""

from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn

from .encoder_node import EncoderNode, memory_settings
from .runner import run_node


class ManagedEncoderNode(LifecycleNodeMixin, EncoderNode):
    """Encoder node with a lifecycle (see module docstring)."""

    _start_paused = True

    def __init__(self, **kwargs) -> None:
        self._accepting = False
        self._dropped_inactive = 0
        EncoderNode.__init__(self, **kwargs)
        LifecycleNodeMixin.__init__(self)

    def _enqueue(self, msg, topic: str) -> None:
        if self._accepting:
            EncoderNode._enqueue(self, msg, topic)
            return
        with self._queue_cond:
            self._stats.received += 1
            self._stats.dropped += 1
            self._dropped_inactive += 1

    def _set_running(self, running: bool) -> None:
        with self._queue_cond:
            self._accepting = running
            self._paused = not running
            self._queue_cond.notify_all()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            payload = memory_settings(self._values).payload_encoder()
        except (ValueError, OSError, RuntimeError) as exc:
            self.get_logger().error(f"configure: cannot load the payload codec: {exc}")
            return TransitionCallbackReturn.FAILURE
        with self._queue_cond:
            self._payload = payload
            self._cameras.clear()
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._set_running(True)
        self.get_logger().info(f"active: encoding ({self.queue_depth} queued frames first)")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._set_running(False)
        self.get_logger().info(f"inactive: encoding paused, {self.queue_depth} frames stay queued")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._set_running(False)
        with self._queue_cond:
            self._cameras.clear()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._set_running(False)
        return super().on_shutdown(state)

    @property
    def encoding_now(self) -> bool:
        """Whether the worker is fitting a frame (it finishes one begun before a deactivate)."""
        with self._queue_cond:
            return self._busy

    def counters(self) -> dict:
        """:meth:`EncoderNode.counters` plus ``dropped_inactive`` (frames that came while not active)."""
        counts = EncoderNode.counters(self)
        with self._queue_cond:
            counts["dropped_inactive"] = self._dropped_inactive
        return counts


def main(args=None) -> int:
    """Console script ``gaussvae_encoder_managed``."""
    return run_node(ManagedEncoderNode, args)


if __name__ == "__main__":
    sys.exit(main())
