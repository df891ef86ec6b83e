"""``gaussvae bench`` pieces that need the shared KITTI recording: frames at the working size and
the warm-start measurement (the figures themselves live in BENCHMARKS.md, not in tests)."""

import numpy as np

from gaussvae_ros.apps import bench


def test_kitti_frames_and_warm_start_benchmark_run(bag_path):
    bag = bag_path("kitti07_mono8_mcap")
    frames = bench.kitti_frames(bag, 2, bench.WARM_START_LONG_SIDE)
    assert len(frames) == 2
    for frame in frames:  # as replay and the encoder fit them: long side 256, float, channels last
        assert frame.shape == (77, 256, 1) and frame.dtype == np.float32 and 0 <= frame.min() <= frame.max() <= 1
    result = bench.warm_start_benchmark(bag, pairs=1, progress=False)
    assert result["warm_start_pairs"] == 1 and result["warm_start_size"] == "256x77"
    assert 0 < result["warm_start_iterations"] <= result["warm_start_cold_iterations"]
