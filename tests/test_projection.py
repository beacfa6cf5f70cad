"""Sampling the portrait at surface points (avatar.generators.projection.sample_image)."""
import numpy as np

from avatar.generators.projection import sample_image


def test_sampling_no_points_gives_no_samples():
    """An empty set of points (a portrait with no hair beside the face) samples to an empty set: OpenCV's
    remap refuses an empty map."""
    assert sample_image(np.zeros((4, 4, 3), np.float32), np.zeros((0, 2), np.float32)).shape == (0, 3)
    assert sample_image(np.zeros((4, 4, 3), np.float32), np.zeros((2, 0, 2), np.float32)).shape == (2, 0, 3)
