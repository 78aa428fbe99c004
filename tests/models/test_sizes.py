"""The input-size rules shared by the model, profiling and deployment."""

import pytest

from edgenext.models.edgenext import input_hw, stage_map_sizes


def test_stage_map_sizes_floor_like_the_network():
    assert stage_map_sizes(256) == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert stage_map_sizes((100, 77)) == [(25, 19), (12, 9), (6, 4), (3, 2)]


def test_input_size_below_the_minimum_is_a_clear_error():
    assert input_hw((224, 320)) == (224, 320)
    with pytest.raises(ValueError, match="below the 32x32 minimum"):
        input_hw(31)
