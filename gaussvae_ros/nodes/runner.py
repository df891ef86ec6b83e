"""The body of every node's ``main(args=None)``: init, spin a MultiThreadedExecutor, clean shutdown.

Ctrl-C (SIGINT) and ``rclpy`` shutdown end the spin quietly (``KeyboardInterrupt`` /
``ExternalShutdownException``); the node is destroyed and the context shut down explicitly, as
Humble and Jazzy want. A node whose parameters are invalid or whose database cannot be opened
prints why and the process exits with status 2 instead of a traceback. rclpy's default signal
handlers (Humble and later) turn SIGINT and SIGTERM into a context shutdown, so ``kill`` and
process supervisors stop nodes as cleanly as Ctrl-C (store closed, worker joined).
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from gaussvae_ros.store import StoreError


def run_node(node_class, args=None, num_threads: int = 4) -> int:
    """Create ``node_class()`` and spin it until shutdown; returns the process exit status."""
    rclpy.init(args=args)
    node = None
    status = 0
    try:
        node = node_class()
        executor = MultiThreadedExecutor(num_threads=num_threads)
        executor.add_node(node)
        try:
            executor.spin()
        finally:
            executor.shutdown(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, OSError, StoreError) as exc:  # invalid configuration, unusable database
        print(f"{node_class.__name__}: error: {exc}", file=sys.stderr)
        status = 2
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return status
