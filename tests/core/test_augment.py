"""Every augmentation changes images as it says and keeps shapes; flags and recipes carry them."""

from __future__ import annotations

import argparse

import pytest
import torch

from ftstudio.commands.recipe_flags import (
    add_data_flags,
    add_train_flags,
    recipe_from_args,
)
from ftstudio.core.errors import InputError
from ftstudio.core.config.recipe import AugmentSpec, Recipe
from ftstudio.core.training.augment import augment_batch


def run(x, seed=0, **spec):
    return augment_batch(x.clone(), AugmentSpec(**spec), torch.Generator().manual_seed(seed))


def gradient(b=16, c=3, h=32, w=32):
    return torch.linspace(0, 1, w).view(1, 1, 1, w).expand(b, c, h, w).contiguous()


def checkerboard(b=8, c=3, h=32, w=32):
    return ((torch.arange(h).view(h, 1) + torch.arange(w).view(1, w)) % 2).float().expand(b, c, h, w).contiguous()


def test_random_resized_crop_zooms_in_without_borders():
    x = gradient()
    out = run(x, scale=(0.25, 0.25))
    assert out.shape == x.shape
    assert torch.allclose(run(torch.ones(4, 3, 16, 16), scale=(0.3, 0.6)), torch.ones(4, 3, 16, 16), atol=1e-5)
    span = out[:, 0, 16, -1] - out[:, 0, 16, 0]  # a row spans half the gradient (½ the width, aspect 3/4–4/3)
    assert ((span > 0.40) & (span < 0.62)).all()
    assert torch.equal(run(x, scale=(1.0, 1.0)), x)  # off


def test_colour_jitter_changes_brightness_keeps_flat_images_flat_and_range():
    x = torch.full((32, 3, 8, 8), 0.5)
    out = run(x, color=0.4)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    means = out.mean(dim=(1, 2, 3))
    assert means.std() > 0.05 and (means - 0.5).abs().max() <= 0.2 + 1e-5
    assert torch.allclose(out, out[:, :1, :1, :1].expand_as(out), atol=1e-5)  # still flat
    gray = run(torch.rand(4, 1, 8, 8), color=0.4)  # one channel works too
    assert gray.shape == (4, 1, 8, 8)


def test_blur_smooths_edges_and_keeps_constant_images():
    x = checkerboard()
    out = run(x, blur=2.0)
    assert out.shape == x.shape
    def tv(t):
        return (t[..., 1:] - t[..., :-1]).abs().mean()

    assert tv(out) < 0.8 * tv(x)
    assert torch.allclose(run(torch.full((2, 3, 9, 9), 0.3), blur=3.0), torch.full((2, 3, 9, 9), 0.3), atol=1e-5)


def test_noise_has_the_standard_deviation_asked_for():
    x = torch.full((16, 3, 32, 32), 0.5)
    out = run(x, noise=0.05)
    assert out.shape == x.shape
    assert abs(float((out - x).std()) - 0.05) < 0.005


def test_erasing_blanks_one_rectangle_of_the_right_size():
    x = torch.ones(64, 3, 20, 20)
    out = run(x, erase=1.0)
    assert out.shape == x.shape
    zero = out[:, 0] == 0
    share = zero.float().mean(dim=(1, 2))
    assert (share >= 0.01).all() and (share <= 0.36).all()
    for mask in zero[:5]:  # a rectangle: its bounding box is all erased
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    assert (zero == out[:, 2].eq(0)).all()  # every channel alike
    assert torch.equal(run(x, erase=0.0), x)
    half = run(torch.ones(400, 1, 8, 8), erase=0.5)
    assert 0.35 < float((half == 0).flatten(1).any(1).float().mean()) < 0.65


def test_colour_works_in_pixel_space_of_normalised_batches():
    mean, std = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1), torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    pixels = torch.rand(8, 3, 8, 8)
    def gen():
        return torch.Generator().manual_seed(5)

    normalised = augment_batch((pixels - mean) / std, AugmentSpec(color=0.3, noise=0.02), gen(), mean, std)
    plain = augment_batch(pixels.clone(), AugmentSpec(color=0.3, noise=0.02), gen())
    assert torch.allclose(normalised * std + mean, plain, atol=1e-4)


def test_same_seed_same_augmentation():
    x = torch.rand(8, 3, 16, 16)
    spec = {"scale": (0.5, 1.0), "color": 0.2, "blur": 1.0, "noise": 0.02, "erase": 0.5, "rotation": 10.0, "flip": True}
    assert torch.equal(run(x, 3, **spec), run(x, 3, **spec))
    assert not torch.equal(run(x, 3, **spec), run(x, 4, **spec))


def parse(*argv):
    p = argparse.ArgumentParser()
    add_data_flags(p)
    add_train_flags(p)
    return recipe_from_args(p.parse_args(list(argv)))


def test_flags_reach_the_recipe_and_bad_values_name_the_flag():
    recipe = parse("--augment-scale", "0.6,1", "--augment-color", "0.3", "--augment-blur", "1.5",
                   "--augment-noise", "0.02", "--augment-erase", "0.25")
    a = recipe.data.augment
    assert (a.scale, a.color, a.blur, a.noise, a.erase) == ((0.6, 1.0), 0.3, 1.5, 0.02, 0.25) and a.enabled
    assert Recipe.from_dict(recipe.to_dict()).data.augment == a
    with pytest.raises(InputError, match="--augment-scale"):
        parse("--augment-scale", "0.9,0.5")
    with pytest.raises(InputError, match="--augment-erase"):
        parse("--augment-erase", "2")
    with pytest.raises(InputError, match="data.augment.noise"):
        Recipe.from_dict({"data": {"augment": {"noise": -1}}})


def test_training_batches_are_augmented_in_place_of_the_plain_ones():
    from ftstudio.core.datasets.bundle import Split
    from ftstudio.core.training.loader import DeviceBatches

    split = Split(torch.randint(0, 256, (40, 3, 12, 12), dtype=torch.uint8), torch.arange(40) % 2)
    plain = DeviceBatches(split, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"), 16)
    spec = AugmentSpec(scale=(0.5, 1.0), color=0.3, blur=1.0, noise=0.05, erase=0.5)
    augmented = DeviceBatches(split, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"), 16, augment=spec)
    pairs = list(zip(plain.epoch(), augmented.epoch(augment_gen=torch.Generator().manual_seed(0))))
    assert len(pairs) == 3
    for (xa, ya), (xb, yb) in pairs:
        assert xa.shape == xb.shape and torch.equal(ya, yb) and not torch.allclose(xa, xb)
