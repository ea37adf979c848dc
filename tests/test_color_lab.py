import warnings

import numpy as np
import pytest
import skimage.color
import skimage.data
import torch

from pretext.color import lab_to_rgb, rgb_to_lab


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.movedim(-3, -1).double().numpy()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rgb_to_lab_matches_skimage_on_random_float(dtype):
    rgb = torch.rand(3, 3, 17, 23, dtype=torch.float64)
    ours = rgb_to_lab(rgb.to(dtype))
    assert ours.dtype == dtype and ours.shape == rgb.shape
    ref = skimage.color.rgb2lab(_hwc(rgb))
    assert np.abs(_hwc(ours) - ref).max() < 1e-3


def test_rgb_to_lab_covers_the_cube_corners_and_dark_values():
    # black, white, primaries, and values on both sides of the transfer curve's and f(t)'s knees
    v = torch.tensor([0.0, 0.003, 0.0404, 0.0405, 0.05, 0.5, 1.0], dtype=torch.float64)
    rgb = torch.cartesian_prod(v, v, v).T.reshape(3, 1, -1)
    ref = skimage.color.rgb2lab(_hwc(rgb))
    assert np.abs(_hwc(rgb_to_lab(rgb)) - ref).max() < 1e-3
    assert np.abs(_hwc(rgb_to_lab(rgb.float())) - ref).max() < 1e-3


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_rgb_to_lab_matches_skimage_on_real_uint8_photos(name):
    img = getattr(skimage.data, name)()
    rgb = torch.from_numpy(img).permute(2, 0, 1)[None]
    ours = rgb_to_lab(rgb)
    assert ours.dtype == torch.float32
    assert np.abs(_hwc(ours)[0] - skimage.color.rgb2lab(img)).max() < 1e-3


def test_uint8_batches_larger_than_a_cpu_chunk_are_converted_whole():
    rgb = (torch.rand(5, 3, 200, 180) * 255).to(torch.uint8)  # 5 x 36k px: several CPU blocks
    ref = skimage.color.rgb2lab(_hwc(rgb.double() / 255))
    assert np.abs(_hwc(rgb_to_lab(rgb)) - ref).max() < 1e-3


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    L = torch.rand(4, 9, 11, dtype=torch.float64) * 100
    ab = torch.rand(4, 2, 9, 11, dtype=torch.float64) * 260 - 130  # much of it out of sRGB
    lab = torch.cat([L[:, None], ab], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about negative Z
        ref = skimage.color.lab2rgb(_hwc(lab))
    out = lab_to_rgb(lab)
    assert out.min() >= 0 and out.max() <= 1
    assert np.abs(_hwc(out) - ref).max() < 1e-3


def test_round_trip_recovers_rgb():
    rgb = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-6)


def test_bad_shapes_and_dtypes_are_refused():
    with pytest.raises(ValueError, match="3, H, W"):
        rgb_to_lab(torch.rand(1, 4, 2, 2))
    with pytest.raises(TypeError, match="uint8"):
        rgb_to_lab(torch.ones(1, 3, 2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="3, H, W"):
        lab_to_rgb(torch.rand(2, 2, 2))
