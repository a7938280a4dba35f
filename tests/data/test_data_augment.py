"""Training-batch augmentation: crop and flip against hand-built tensors, seeded determinism,
checkpointed generator state, validation, and a CNN run with and without it."""

from __future__ import annotations

import io

import pytest
import torch

from hatcl.algorithms.finetuning import Finetuning
from hatcl.data.augment import Augmentation, build_augmentation
from hatcl.data.base import DataConfig, validate_config
from hatcl.functional.augment import horizontal_flip, padded_crop

IMAGE = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])  # (C=1, 3, 3)


def test_padded_crop_of_a_known_image():
    batch = IMAGE.expand(3, 1, 3, 3)
    offsets = torch.tensor([[0, 0], [2, 1], [1, 1]])
    out = padded_crop(batch, offsets=offsets, padding=1)
    expected = torch.tensor(
        [
            [[[0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [0.0, 4.0, 5.0]]],  # top-left of the padded image
            [[[4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [0.0, 0.0, 0.0]]],  # two rows down, one right
            [[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]],  # the centre: the image
        ]
    )
    assert torch.equal(out, expected)


def test_padded_crop_keeps_channels_apart():
    batch = torch.stack([IMAGE[0], -IMAGE[0]]).unsqueeze(0)  # (1, 2, 3, 3)
    out = padded_crop(batch, offsets=torch.tensor([[2, 2]]), padding=1)
    expected_first = torch.tensor([[5.0, 6.0, 0.0], [8.0, 9.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.equal(out[0, 0], expected_first)
    assert torch.equal(out[0, 1], -expected_first)


def test_horizontal_flip_of_a_known_image():
    batch = IMAGE.expand(2, 1, 3, 3)
    out = horizontal_flip(batch, flags=torch.tensor([True, False]))
    mirrored = torch.tensor([[[3.0, 2.0, 1.0], [6.0, 5.0, 4.0], [9.0, 8.0, 7.0]]])
    assert torch.equal(out[0], mirrored)
    assert torch.equal(out[1], IMAGE)


def _augmentation(seed: int) -> Augmentation:
    augmentation = Augmentation(names=["crop", "flip"], crop_padding=2, input_shape=(1, 3, 3))
    augmentation.generator.seed = seed
    return augmentation


def test_same_seed_same_batches_other_seed_other_batches():
    batch = torch.arange(64 * 9, dtype=torch.float32).view(64, 1, 3, 3)
    a, b, c = _augmentation(5), _augmentation(5), _augmentation(6)
    for _ in range(3):
        out_a, out_b, out_c = a(batch), b(batch), c(batch)
        assert torch.equal(out_a, out_b)
        assert not torch.equal(out_a, out_c)
    # independent draws per sample: many distinct outcomes of one image's crop and flip
    same_image = IMAGE.expand(64, 1, 3, 3)
    outcomes = {tuple(x.flatten().tolist()) for x in a(same_image)}
    assert len(outcomes) > 10


def test_generator_state_round_trip_continues_identically():
    batch = torch.randn(16, 1, 3, 3)
    first = _augmentation(1)
    first(batch)
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    saved.seek(0)
    second = _augmentation(99)
    second.load_state_dict(torch.load(saved, weights_only=True))
    assert torch.equal(first(batch), second(batch))


def test_the_algorithm_carries_the_augmentation_state():
    algorithm = Finetuning()
    assert algorithm.apply_augmentation(IMAGE) is IMAGE  # none configured: unchanged
    algorithm.set_augmentation(_augmentation(3))
    algorithm.augment_inputs(IMAGE.expand(4, 1, 3, 3))
    assert "augmentation.generator.state" in algorithm.state_dict()
    assert algorithm.state_dict()["augmentation.generator.state"].numel() > 0


def test_empty_list_builds_nothing_and_non_images_are_refused():
    assert build_augmentation((), crop_padding=4, input_shape=(1, 8, 8)) is None
    with pytest.raises(ValueError, match="image inputs"):
        build_augmentation(("flip",), crop_padding=4, input_shape=(40,))


@pytest.mark.parametrize(
    ("keys", "word"),
    [
        ({"augment": ("crop", "rotate")}, "rotate"),
        ({"augment": ("flip", "flip")}, "twice"),
        ({"augment": "crop"}, "list"),
        ({"augment": ("crop",), "crop_padding": -1}, "crop_padding"),
    ],
)
def test_config_is_validated_before_any_data(keys, word):
    with pytest.raises((ValueError, TypeError), match=word):
        validate_config(DataConfig(**keys), seed=1)


@pytest.mark.slow
def test_cnn_run_with_augmentation_is_deterministic_and_differs_from_without(tmp_path):
    from hatcl.cli_run import compose_config, run_from_config
    from hatcl.training.checkpoint import load_checkpoint

    common = [
        "data=split_digits",
        "data.num_tasks=2",
        "backbone=cnn",
        "backbone.channels=[4,4]",
        "backbone.kernel_sizes=[3,2]",
        "backbone.fc_dims=[16]",
        "algorithm=finetuning",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.figures=false",
        "trainer.loggers=[]",
    ]
    weights = {}
    for name, extra in [
        ("one", ["data.augment=[crop,flip]", "data.crop_padding=1"]),
        ("two", ["data.augment=[crop,flip]", "data.crop_padding=1"]),
        ("none", []),
    ]:
        run = run_from_config(compose_config([*common, *extra, f"output_dir={tmp_path / name}"]))
        payload = load_checkpoint(run.run_dir / "checkpoints" / "task_2.ckpt")
        weights[name] = {k: v for k, v in payload["model"].items() if v.is_floating_point()}
        assert ("augmentation.generator.state" in payload["algorithm"]) == bool(extra)
    one, two, none = weights["one"], weights["two"], weights["none"]
    assert one.keys() == two.keys() == none.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert not all(torch.equal(one[k], none[k]) for k in one)
