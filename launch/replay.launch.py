"""Replay a recording into the memory graph: gaussvae.launch.py on /clock time plus a bag player.

    ros2 launch gaussvae_ros replay.launch.py bag:=/data/kitti07_mono8_mcap \
        image_topic:=/camera/image_raw odom_topic:=/odom camera_info_topic:=/camera/camera_info \
        database:=/tmp/kitti.db

The nodes run with ``use_sim_time`` and the player publishes ``/clock`` from the recording.
``player:=gaussvae`` (default) plays with this package's ``gaussvae play`` (pure Python, no
rosbag2 install needed; waits until the encoder subscribes to ``image_topic``), the console script
of this package found by package path like ``ros2 run gaussvae_ros gaussvae`` does
(``<prefix>/lib/gaussvae_ros/gaussvae`` after ``colcon build``, setup.cfg), else on PATH (pip);
``player:=ros2`` uses ``ros2 bag play``. Every argument of gaussvae.launch.py is accepted and
passed on. Without ``ros2 launch``: ``gaussvae graph --use-sim-time --bag BAG ...``.
"""

import os
import shutil
import sys

from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "gaussvae_ros"

#: Arguments of this file; the graph's own (gaussvae.launch.py ARGUMENTS) are declared there.
ARGUMENTS = (
    ("bag", None, "rosbag2 recording (folder) to play"),
    ("rate", "1.0", "playback speed factor"),
    ("player", "gaussvae", "gaussvae (gaussvae play) or ros2 (ros2 bag play)"),
    ("delay", "2.0", "seconds between starting the player's publishers and playing (discovery)"),
)

#: Arguments forwarded to gaussvae.launch.py (use_sim_time is forced to true).
GRAPH_ARGUMENTS = ("namespace", "params_file", "database", "image_topic", "odom_topic", "camera_info_topic",
                   "compressed_image_topics", "pose_topics", "log_level")

#: Defaults of the forwarded arguments, as in gaussvae.launch.py.
GRAPH_DEFAULTS = {"namespace": "", "params_file": "", "database": "", "image_topic": "image_raw",
                  "odom_topic": "odom", "camera_info_topic": "camera_info", "compressed_image_topics": "",
                  "pose_topics": "", "log_level": "info"}


def gaussvae_executable():
    """The ``gaussvae`` console script: ``<prefix>/lib/gaussvae_ros/gaussvae`` of the installed package
    (colcon / ament), else ``gaussvae`` on PATH or beside this Python (a pip install in a venv)."""
    try:
        candidate = os.path.join(get_package_prefix(PACKAGE), "lib", PACKAGE, "gaussvae")
    except (PackageNotFoundError, KeyError, ValueError):
        candidate = None
    if candidate and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("gaussvae") or shutil.which("gaussvae", path=os.path.dirname(sys.executable))
    if found:
        return found
    raise RuntimeError(f"no gaussvae executable: not at {candidate or 'lib/' + PACKAGE + '/gaussvae'} "
                       "(is the package built and install/setup.bash sourced?) nor on PATH")


def _player(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    bag, rate, player = arg("bag"), arg("rate"), arg("player")
    if player == "ros2":
        cmd = ["ros2", "bag", "play", bag, "--rate", rate, "--clock", "--delay", arg("delay")]
    elif player == "gaussvae":
        cmd = [gaussvae_executable(), "play", bag, "--rate", rate, "--clock", "--delay", arg("delay")]
        inputs = [arg("image_topic")] + [t.strip() for t in arg("compressed_image_topics").split(",")]
        wait_for = [t for t in inputs if t.startswith("/")]
        if wait_for:  # start once the encoder listens: no frame of the recording is lost
            cmd += ["--wait-for", *wait_for]
    else:
        raise ValueError(f"player must be gaussvae or ros2, got {player!r}")
    return [ExecuteProcess(cmd=cmd, name="bag_player", output="screen")]


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, description=description)
                if default is None else DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    declared += [DeclareLaunchArgument(name, default_value=GRAPH_DEFAULTS[name],
                                       description="see gaussvae.launch.py") for name in GRAPH_ARGUMENTS]
    graph_args = {name: LaunchConfiguration(name) for name in GRAPH_ARGUMENTS}
    graph_args["use_sim_time"] = "true"
    graph = IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(HERE, "gaussvae.launch.py")),
                                     launch_arguments=graph_args.items())
    return LaunchDescription(declared + [graph, OpaqueFunction(function=_player)])
