"""The managed (lifecycle) memory and encoder nodes over DDS: transitions through ~/change_state
pause and resume storing with nothing lost, frames that arrive while the encoder is inactive are
counted as dropped, and `gaussvae db compact` runs between the memory node's cleanup and its next
configure / activate."""

from support.ros_graph import FAST_ENCODER, RosGraph, image_msg, pattern_image, wait_until

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from gaussvae_ros_interfaces.msg import MemoryRecord  # noqa: E402
from gaussvae_ros_interfaces.srv import GetStats, QueryByTime  # noqa: E402

from gaussvae_ros.cli.main import main as gaussvae  # noqa: E402
from gaussvae_ros.nodes.convert import MEMORY_QOS  # noqa: E402
from gaussvae_ros.nodes.managed_encoder_node import ManagedEncoderNode  # noqa: E402
from gaussvae_ros.nodes.managed_memory_node import ManagedMemoryNode  # noqa: E402

S = 1_000_000_000


class Lifecycle:
    """~/change_state and ~/get_state of one managed node, called over DDS."""

    def __init__(self, graph, name: str) -> None:
        self.graph = graph
        self.change = graph.client(ChangeState, f"{name}/change_state")
        self.get = graph.client(GetState, f"{name}/get_state")

    def state(self) -> int:
        return self.graph.call(self.get, GetState.Request()).current_state.id

    def __call__(self, *transitions: int) -> None:
        for t in transitions:
            response = self.graph.call(self.change, ChangeState.Request(transition=Transition(id=t)))
            assert response.success, f"transition {t} failed"


UP = (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE)


def _stamps(graph, client) -> list[int]:
    response = graph.call(client, QueryByTime.Request())
    assert response.success, response.message
    return [m.header.stamp.sec for m in response.memories]


def test_pause_resume_compact_nothing_lost(tmp_path):
    database = tmp_path / "m.db"
    with RosGraph() as graph:
        memory = graph.add(ManagedMemoryNode, {"database": str(database), "markers_period_s": 0.2})
        encoder = graph.add(ManagedEncoderNode, dict(FAST_ENCODER, image_reliability="reliable", queue_size=50,
                                                     odometry_topics=[""], camera_info_topics=[""]))
        images = graph.publisher(Image, "image_raw", 50)
        graph.wait_for_subscribers(images)
        records = graph.collect(MemoryRecord, "memories", MEMORY_QOS.get())
        memory_lc, encoder_lc = Lifecycle(graph, "gaussvae_memory"), Lifecycle(graph, "gaussvae_encoder")
        stats = graph.client(GetStats, "get_stats")
        by_time = graph.client(QueryByTime, "query_by_time")

        def count() -> int:
            response = graph.call(stats, GetStats.Request())
            assert response.success, response.message
            return response.count

        def frame(second: int) -> None:
            images.publish(image_msg(pattern_image(48, 64, seed=second), "rgb8", second * S))

        assert memory_lc.state() == encoder_lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        unconfigured = graph.call(stats, GetStats.Request())
        assert not unconfigured.success and "not configured" in unconfigured.message
        assert not database.exists()  # configure opens (creates) the store, not the constructor

        memory_lc(*UP)
        encoder_lc(*UP)
        assert memory_lc.state() == encoder_lc.state() == State.PRIMARY_STATE_ACTIVE
        for s in (1, 2, 3):
            frame(s)
        wait_until(lambda: count() == 3, 60.0, "3 memories stored while active")

        # Encoder inactive: frames are dropped and counted; nothing is encoded.
        encoder_lc(Transition.TRANSITION_DEACTIVATE)
        assert encoder_lc.state() == State.PRIMARY_STATE_INACTIVE
        for s in (4, 5):
            frame(s)
        wait_until(lambda: encoder.counters()["dropped_inactive"] == 2, 30.0, "2 frames dropped while inactive")
        assert encoder.counters()["dropped"] >= 2

        # Encoder active again, memory inactive: records are held, not stored, and not lost.
        encoder_lc(Transition.TRANSITION_ACTIVATE)
        memory_lc(Transition.TRANSITION_DEACTIVATE)
        for s in (6, 7):
            frame(s)
        wait_until(lambda: memory.held_records == 2, 60.0, "2 records held by the inactive memory node")
        assert count() == 3  # inactive: queries answered, nothing stored

        # Store open: compaction cannot have the file. After cleanup it can.
        assert gaussvae(["db", "compact", str(database)]) == 2
        memory_lc(Transition.TRANSITION_CLEANUP)
        assert memory_lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert gaussvae(["db", "compact", str(database), "--json"]) == 0
        frame(8)  # arrives while unconfigured: held as well
        wait_until(lambda: memory.held_records == 3, 60.0, "3 records held")

        memory_lc(*UP)
        wait_until(lambda: count() == 6, 30.0, "held records stored on activate")
        assert _stamps(graph, by_time) == [1, 2, 3, 6, 7, 8]  # 4 and 5 were dropped by the inactive encoder
        assert memory.counters()["held"] == 3 and memory.counters()["dropped_inactive"] == 0
        assert sorted(r.header.stamp.sec for r in records) == [1, 2, 3, 6, 7, 8]


def test_memory_hold_limit_drops_oldest(tmp_path):
    from support.ros_graph import record_msg

    with RosGraph() as graph:
        memory = graph.add(ManagedMemoryNode, {"database": str(tmp_path / "m.db"), "inactive_queue_size": 2})
        pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        graph.wait_for_subscribers(pub)
        lc = Lifecycle(graph, "gaussvae_memory")
        for s in (1, 2, 3):
            pub.publish(record_msg(s * S, (float(s), 0.0, 0.0)))
        wait_until(lambda: memory.counters()["held"] == 3, 30.0, "3 records received")
        assert memory.held_records == 2 and memory.counters()["dropped_inactive"] == 1
        lc(*UP)
        by_time = graph.client(QueryByTime, "query_by_time")
        wait_until(lambda: _stamps(graph, by_time) == [2, 3], 30.0, "the newest two stored")


def test_encoder_deactivate_keeps_queued_frames(tmp_path):
    # Fits of ~0.1-0.5 s each: a burst of frames waits in the queue while the first is fitted.
    slow = dict(FAST_ENCODER, codec="gaussians-q", memory_bytes=0, n_gaussians=64, long_side=64, max_iters=150,
                image_reliability="reliable", queue_size=50, odometry_topics=[""], camera_info_topics=[""])
    with RosGraph() as graph:
        encoder = graph.add(ManagedEncoderNode, slow)
        images = graph.publisher(Image, "image_raw", 50)
        graph.wait_for_subscribers(images)
        records = graph.collect(MemoryRecord, "memories", MEMORY_QOS.get())
        lc = Lifecycle(graph, "gaussvae_encoder")
        lc(*UP)
        for s in range(1, 7):
            images.publish(image_msg(pattern_image(48, 64, seed=s), "rgb8", s * S))
        wait_until(lambda: encoder.counters()["received"] == 6 and encoder.queue_depth >= 2, 30.0,
                   "frames queued behind a fit")
        lc(Transition.TRANSITION_DEACTIVATE)
        queued = encoder.queue_depth
        assert queued >= 1
        wait_until(lambda: not encoder.encoding_now, 30.0, "the fit in progress finished")
        done = encoder.counters()["keyframes"]
        assert encoder.queue_depth == queued and done + queued == 6  # paused: the queue is kept, nothing dropped
        assert encoder.counters()["dropped"] == 0
        lc(Transition.TRANSITION_ACTIVATE)
        wait_until(lambda: len(records) == 6, 60.0, "every queued frame encoded after activate")
        assert sorted(r.header.stamp.sec for r in records) == [1, 2, 3, 4, 5, 6]
