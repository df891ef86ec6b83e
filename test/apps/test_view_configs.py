"""config/gaussvae.rviz and config/gaussvae_foxglove.json: they parse and show what the nodes publish
(memory_poses latched, memory_pose_array, the recalled image raw and compressed)."""

import json
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_rviz_config():
    rviz = yaml.safe_load((CONFIG / "gaussvae.rviz").read_text())
    displays = {d["Class"]: d for d in rviz["Visualization Manager"]["Displays"]}
    markers = displays["rviz_default_plugins/MarkerArray"]["Topic"]
    assert markers["Value"] == "memory_poses" and markers["Durability Policy"] == "Transient Local"
    assert markers["Reliability Policy"] == "Reliable"
    assert displays["rviz_default_plugins/PoseArray"]["Topic"]["Value"] == "memory_pose_array"
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "recalled/image"
    assert set(displays["rviz_default_plugins/MarkerArray"]["Namespaces"]) == {"memories", "memory_labels"}


def test_foxglove_layout():
    layout = json.loads((CONFIG / "gaussvae_foxglove.json").read_text())
    panels = layout["configById"]
    three_d = next(v for k, v in panels.items() if k.startswith("3D!"))
    assert {"/memory_poses", "/memory_pose_array"} <= set(three_d["topics"])
    images = {v["imageMode"]["imageTopic"] for k, v in panels.items() if k.startswith("Image!")}
    assert images == {"/recalled/image/compressed", "/recalled/image"}

    def leaves(node):
        if isinstance(node, str):
            return {node}
        return leaves(node["first"]) | leaves(node["second"])

    assert leaves(layout["layout"]) == set(panels)  # every configured panel is laid out
