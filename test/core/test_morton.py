"""Morton order: a permutation that keeps spatial neighbours close in the sequence."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gaussvae_ros.core import morton_codes, morton_order


def test_codes_interleave_u_then_v():
    xy = np.array([[0.0, 0.0], [0.75, 0.0], [0.0, 0.75], [0.75, 0.75]])
    assert morton_codes(xy, bits=1).tolist() == [0, 1, 2, 3]


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 300), st.just(2)), elements=st.floats(0, 1)))
def test_order_is_a_permutation_sorted_by_code(xy):
    order = morton_order(xy)
    assert sorted(order.tolist()) == list(range(len(xy)))
    codes = morton_codes(xy)[order]
    assert (np.diff(codes.astype(np.int64)) >= 0).all()


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_sequence_neighbours_are_spatial_neighbours(seed):
    """Consecutive Gaussians along the curve are far closer than consecutive ones in random order."""
    rng = np.random.default_rng(seed)
    xy = rng.random((512, 2))
    ordered = xy[morton_order(xy)]
    step_morton = np.median(np.linalg.norm(np.diff(ordered, axis=0), axis=1))
    step_random = np.median(np.linalg.norm(np.diff(xy, axis=0), axis=1))
    assert step_morton < 0.3 * step_random
    # and the curve is local in 2-D: points in the same quadrant form one contiguous run
    quadrant = (ordered[:, 0] >= 0.5).astype(int) + 2 * (ordered[:, 1] >= 0.5).astype(int)
    assert (np.diff(quadrant) >= 0).all()


def test_bad_positions_are_refused():
    with pytest.raises(ValueError):
        morton_codes(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        morton_codes(np.array([[np.nan, 0.1]]))


def test_several_sets_are_ordered_each_on_its_own():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1, (4, 50, 2))
    np.testing.assert_array_equal(morton_order(xy), np.stack([morton_order(s) for s in xy]))
    np.testing.assert_array_equal(morton_codes(xy), np.stack([morton_codes(s) for s in xy]))
    with pytest.raises(ValueError, match="shape"):
        morton_codes(np.zeros(5))
