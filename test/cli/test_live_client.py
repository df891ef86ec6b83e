"""`gaussvae recall` / `gaussvae query` against a running memory graph over DDS: the client's PNGs
are the recall service's images; by ids, pose and time, through the service and the action; a
clear error and a non-zero exit when no server answers."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from support.ros_graph import RosGraph, image_pixels, record_msg, wait_until

from gaussvae_ros_interfaces.msg import MemoryRecord  # noqa: E402
from gaussvae_ros_interfaces.srv import GetStats, Recall  # noqa: E402

from gaussvae_ros.cli.main import main as gaussvae  # noqa: E402
from gaussvae_ros.nodes.convert import MEMORY_QOS  # noqa: E402
from gaussvae_ros.nodes.memory_node import MemoryNode  # noqa: E402
from gaussvae_ros.nodes.recall_node import RecallNode  # noqa: E402

pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)  # DDS discovery on a loaded machine

S = 1_000_000_000


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    database = tmp_path_factory.mktemp("live") / "m.db"
    with RosGraph() as g:
        g.add(MemoryNode, {"database": str(database)})
        g.add(RecallNode, {"database": str(database)})
        pub = g.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        g.wait_for_subscribers(pub)
        for i in range(1, 6):
            pub.publish(record_msg(i * S, (float(i), 0.0, 0.0), channels=1 if i == 2 else 3,
                                   encoding="mono8" if i == 2 else "rgb8"))
        stats = g.client(GetStats, "get_stats")
        wait_until(lambda: g.call(stats, GetStats.Request()).count == 5, 30.0, "5 memories stored")
        g.recall_client = g.client(Recall, "recall")
        yield g


@pytest.fixture
def cli(graph, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(graph.domain_id))

    def run(*argv):
        return gaussvae([argv[0], "--namespace", graph.ns, "--timeout", "20", *argv[1:]])

    return run


def _served(graph, ids, width, height) -> dict:
    r = graph.call(graph.recall_client, Recall.Request(select=Recall.Request.SELECT_IDS, ids=ids, width=width,
                                                       height=height))
    assert r.success, r.message
    return {i: image_pixels(image) for i, image in zip(r.ids, r.images)}


def _pngs(folder: Path) -> dict:
    return {int(p.name.split("_")[0]): np.asarray(PILImage.open(p)) for p in sorted(folder.glob("0*.png"))}


@pytest.mark.parametrize("stream", [False, True])
def test_recall_pngs_match_the_service(graph, cli, tmp_path, capsys, stream):
    out = tmp_path / "out"
    args = ["recall", "--ids", "1", "2", "4", "--size", "40x30", "--out", str(out), "--contact-sheet", "--json"]
    assert cli(*args, *(["--stream"] if stream else [])) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ids"] == [1, 2, 4] and result["count"] == 3 and (out / "contact_sheet.png").exists()
    pngs, served = _pngs(out), _served(graph, [1, 2, 4], 40, 30)
    assert sorted(pngs) == [1, 2, 4]
    for i in served:
        assert pngs[i].shape == served[i].shape  # mono8 stays gray
        np.testing.assert_array_equal(pngs[i], served[i])


def test_recall_by_pose_and_time(graph, cli, tmp_path, capsys):
    assert cli("recall", "--near", "3", "0", "0", "--radius", "1.1", "--out", str(tmp_path / "pose"), "--json") == 0
    assert json.loads(capsys.readouterr().out)["ids"] == [3, 2, 4]  # nearest first, ties by id
    assert sorted(_pngs(tmp_path / "pose")) == [2, 3, 4]
    assert cli("recall", "--start", "4", "--out", str(tmp_path / "time"), "--stream", "--json") == 0
    assert json.loads(capsys.readouterr().out)["ids"] == [4, 5]
    assert _pngs(tmp_path / "time")[4].shape == (48, 64, 3)  # original size by default


def test_query(cli, capsys):
    assert cli("query", "--near", "1", "0", "0", "--k", "2", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in result["memories"]] == [1, 2] and result["memories"][1]["distance_m"] == pytest.approx(1.0)
    assert cli("query", "--start", "2", "--end", "3") == 0
    text = capsys.readouterr().out
    assert "2 memories" in text and "#2" in text and "#3" in text
    assert cli("query", "--stats", "--json") == 0
    assert json.loads(capsys.readouterr().out)["memories"] == 5
    assert cli("query", "--ids", "1", "99", "--json") == 0
    assert json.loads(capsys.readouterr().out)["missing_ids"] == [99]


def test_refused_request_and_no_server(graph, cli, tmp_path, capsys, monkeypatch):
    assert cli("recall", "--ids", "77", "--out", str(tmp_path / "x")) == 2
    assert "77" in capsys.readouterr().err
    started = __import__("time").monotonic()
    code = gaussvae(["recall", "--namespace", "/nobody_here", "--timeout", "1", "--ids", "1", "--out",
                     str(tmp_path / "y")])
    err = capsys.readouterr().err
    assert code == 3 and "no /nobody_here/recall service answered within 1 s" in err
    assert __import__("time").monotonic() - started < 15
    assert gaussvae(["query", "--namespace", "/nobody_here", "--timeout", "1", "--stats"]) == 3
    assert "/nobody_here/get_stats" in capsys.readouterr().err
    assert gaussvae(["recall", "--namespace", "/nobody_here", "--timeout", "1", "--stream", "--out",
                     str(tmp_path / "z")]) == 3
    assert "/nobody_here/recall_memories action" in capsys.readouterr().err
