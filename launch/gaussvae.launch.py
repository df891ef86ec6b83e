"""Launch the gaussvae_ros memory graph: gaussvae_encoder, gaussvae_memory, gaussvae_recall.

    ros2 launch gaussvae_ros gaussvae.launch.py image_topic:=/camera/image_raw odom_topic:=/odom \
        camera_info_topic:=/camera/camera_info database:=/data/memories.db

Parameters come from ``params_file`` (default: the package's ``config/gaussvae.yaml``); launch
arguments override a few of them. Without ``ros2 launch`` (e.g. a pip-only set-up), ``gaussvae
graph`` starts the same processes with the same parameter file, namespace, remappings and
overrides (see gaussvae_ros/apps/graph.py).

With ``managed:=true`` the encoder and memory nodes are the lifecycle ones
(``gaussvae_encoder_managed``, ``gaussvae_memory_managed``, same node names) and, with
``autostart:=true`` (the default), are configured and activated at start; ``autostart:=false``
leaves them unconfigured for a lifecycle manager or ``ros2 lifecycle set``.

Topics (relative names, in ``namespace``): encoder ``image_raw`` / ``odom`` / ``camera_info`` ->
``memories`` -> memory node; services ``query_by_time``, ``query_by_pose``, ``query_by_ids``,
``get_stats``, ``delete_memories`` (memory node) and ``recall`` (recall node, publishing
``recalled/image`` and ``recalled/camera_info``); ``/diagnostics``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "gaussvae_ros"

#: (name, default, description) of every launch argument.
ARGUMENTS = (
    ("namespace", "", "namespace of the three nodes"),
    ("params_file", "", "ROS 2 parameter file (default: the package's config/gaussvae.yaml)"),
    ("database", "", "memory store file for the memory and recall nodes (default: from params_file)"),
    ("image_topic", "image_raw", "encoder input sensor_msgs/Image topic (remaps image_raw)"),
    ("odom_topic", "odom", "encoder pose source nav_msgs/Odometry topic (remaps odom)"),
    ("camera_info_topic", "camera_info", "encoder sensor_msgs/CameraInfo topic (remaps camera_info)"),
    ("compressed_image_topics", "", "comma-separated sensor_msgs/CompressedImage topics (default: from params_file)"),
    ("pose_topics", "", "comma-separated geometry_msgs/PoseStamped topics (default: from params_file)"),
    ("use_sim_time", "false", "use /clock time (true when replaying a recording)"),
    ("log_level", "info", "log level of the nodes"),
    ("managed", "false", "start the encoder and memory nodes as lifecycle (managed) nodes"),
    ("autostart", "true", "with managed:=true: configure and activate them at start"),
)


def _topic_list(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    params_file = arg("params_file") or os.path.join(get_package_share_directory(PACKAGE), "config", "gaussvae.yaml")
    use_sim_time = _yes(arg("use_sim_time"))
    log_args = ["--ros-args", "--log-level", arg("log_level")]
    encoder_overrides = {"use_sim_time": use_sim_time}
    if _topic_list(arg("compressed_image_topics")):
        encoder_overrides["compressed_image_topics"] = _topic_list(arg("compressed_image_topics"))
    if _topic_list(arg("pose_topics")):
        encoder_overrides["pose_topics"] = _topic_list(arg("pose_topics"))
    store_overrides = {"use_sim_time": use_sim_time}
    if arg("database"):
        store_overrides["database"] = os.path.abspath(os.path.expanduser(arg("database")))
    remappings = [("image_raw", arg("image_topic")), ("odom", arg("odom_topic")),
                  ("camera_info", arg("camera_info_topic"))]
    namespace = arg("namespace")
    if _yes(arg("managed")):
        return _managed_nodes(namespace, params_file, encoder_overrides, store_overrides, remappings, log_args,
                              _yes(arg("autostart")))
    return [
        Node(package=PACKAGE, executable="gaussvae_encoder", name="gaussvae_encoder", namespace=namespace,
             parameters=[params_file, encoder_overrides], remappings=remappings, arguments=log_args, output="screen"),
        # respawn: a memory or recall node that dies is started again (the encoder's reliable,
        # transient-local publisher holds the records meanwhile), as `gaussvae graph --respawn` does.
        Node(package=PACKAGE, executable="gaussvae_memory", name="gaussvae_memory", namespace=namespace,
             parameters=[params_file, dict(store_overrides)], arguments=log_args, output="screen",
             respawn=True, respawn_delay=1.0),
        Node(package=PACKAGE, executable="gaussvae_recall", name="gaussvae_recall", namespace=namespace,
             parameters=[params_file, dict(store_overrides)], arguments=log_args, output="screen",
             respawn=True, respawn_delay=1.0),
    ]


def _yes(text):
    return text.strip().lower() in ("true", "1", "yes", "on")


def _managed_nodes(namespace, params_file, encoder_overrides, store_overrides, remappings, log_args, autostart):
    """The lifecycle encoder and memory nodes (configured and activated when ``autostart``), the recall node."""
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.events import matches_action
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    encoder = LifecycleNode(package=PACKAGE, executable="gaussvae_encoder_managed", name="gaussvae_encoder",
                            namespace=namespace, parameters=[params_file, encoder_overrides], remappings=remappings,
                            arguments=log_args, output="screen")
    memory = LifecycleNode(package=PACKAGE, executable="gaussvae_memory_managed", name="gaussvae_memory",
                           namespace=namespace, parameters=[params_file, dict(store_overrides)], arguments=log_args,
                           output="screen")
    actions = [memory, encoder]
    if autostart:
        for node in (memory, encoder):
            def change(transition, node=node):
                return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                   transition_id=transition))
            actions.append(RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, goal_state="inactive",
                entities=[change(Transition.TRANSITION_ACTIVATE)])))
            actions.append(change(Transition.TRANSITION_CONFIGURE))
    actions.append(Node(package=PACKAGE, executable="gaussvae_recall", name="gaussvae_recall", namespace=namespace,
                        parameters=[params_file, dict(store_overrides)], arguments=log_args, output="screen"))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)])
