"""The applications, apart from the library: what a person runs.

* :mod:`.replay`: offline replay of a rosbag2 recording into a store (``gaussvae replay``), the
  memory pipeline driven by a recording;
* :mod:`.demo`: ``make demo``, the main job on real photographs, live over ROS 2;
* :mod:`.player`: replays a recording over DDS (``gaussvae play``);
* :mod:`.graph`: runs the three nodes as one graph (``gaussvae graph``);
* :mod:`.bench`: the core benchmarks (``gaussvae bench``).

May import every library room (core, bag, store, vae, codecs, pipeline, eval) and the nodes;
rclpy only where a command talks ROS. Never the command line (:mod:`gaussvae_ros.cli`).
"""
