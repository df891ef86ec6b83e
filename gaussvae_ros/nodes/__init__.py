"""The ROS 2 nodes of gaussvae_ros: thin shells over the ROS-free rooms (pipeline, codecs, store).

* ``gaussvae_encoder`` (:mod:`.encoder_node`): camera topics in, ``MemoryRecord`` messages out
  (the memory pipeline, :mod:`gaussvae_ros.pipeline`, shared with offline replay).
* ``gaussvae_memory`` (:mod:`.memory_node`): records into the SQLite store, query / stats / delete
  services, retention.
* ``gaussvae_recall`` (:mod:`.recall_node`): the ``recall`` service and ``recall_memories``
  action, memories back into images (raw and compressed).
* ``gaussvae_encoder_managed`` / ``gaussvae_memory_managed`` (:mod:`.managed_encoder_node`,
  :mod:`.managed_memory_node`): the same nodes as lifecycle nodes.

Shared helpers: :mod:`.params` (parameter tables), :mod:`.convert` (message conversions, QoS),
:mod:`.queries` (request checks and store queries), :mod:`.runner` (``main`` body). ``config/gaussvae.yaml`` documents every parameter;
``gaussvae graph`` (:mod:`gaussvae_ros.apps.graph`) starts the three nodes as one graph.

Importing this package does not import rclpy; the node modules do. May import every library room
(core, bag, store, codecs, pipeline); never offline replay or another application.
"""

#: Console scripts -> node modules, as in setup.py and the launch files.
EXECUTABLES = {
    "gaussvae_encoder": "gaussvae_ros.nodes.encoder_node",
    "gaussvae_memory": "gaussvae_ros.nodes.memory_node",
    "gaussvae_recall": "gaussvae_ros.nodes.recall_node",
}

#: Console scripts of the lifecycle (managed) variants -> node modules (same node names, same
#: parameters; ``gaussvae.launch.py managed:=true``).
MANAGED_EXECUTABLES = {
    "gaussvae_encoder_managed": "gaussvae_ros.nodes.managed_encoder_node",
    "gaussvae_memory_managed": "gaussvae_ros.nodes.managed_memory_node",
}
