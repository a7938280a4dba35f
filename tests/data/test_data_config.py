"""DataConfig construction and validation errors."""

from __future__ import annotations

import pytest

from hatcl.data.base import DataConfig, build_continual_data, validate_config
from hatcl.data.registries import SCENARIOS, SOURCES, SourceInfo, source_info


def test_registries_list_all_names():
    assert SOURCES.names() == (
        "digits",
        "fashion_mnist",
        "mnist",
        "kmnist",
        "cifar10",
        "cifar100",
        "mnist1d",
    )
    assert SCENARIOS.names() == ("permuted", "split", "rotated")
    assert all(isinstance(source_info(name), SourceInfo) for name in SOURCES.names())
    assert all(entry.summary for entry in SOURCES.entries() + SCENARIOS.entries())


def test_config_is_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        DataConfig("digits")  # type: ignore[misc]
    config = DataConfig()
    with pytest.raises(AttributeError):
        config.num_tasks = 3  # type: ignore[misc]


def test_from_mapping_converts_lists_and_rejects_unknown_keys():
    config = DataConfig.from_mapping(
        {"scenario": "split", "num_tasks": 2, "class_order": [3, 1, 2, 0]}
    )
    assert config.class_order == (3, 1, 2, 0)
    assert config.source == "digits"
    with pytest.raises(ValueError, match=r"unknown data config key\(s\) bogus.*valid keys"):
        DataConfig.from_mapping({"bogus": 1, "source": "digits"})


def test_from_mapping_accepts_omegaconf():
    omegaconf = pytest.importorskip("omegaconf")
    mapping = omegaconf.OmegaConf.create({"scenario": "rotated", "angles": [0, 45.0]})
    config = DataConfig.from_mapping(mapping)
    assert config.angles == (0, 45.0)
    assert isinstance(config.angles, tuple)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"source": "imagenet"}, ValueError, r"data.source 'imagenet'.*digits, fashion_mnist"),
        ({"scenario": "shuffled"}, ValueError, r"data.scenario 'shuffled'.*permuted, split"),
        ({"num_tasks": 0}, ValueError, r"data.num_tasks must be an int >= 1, got 0"),
        ({"num_tasks": 2.0}, TypeError, r"data.num_tasks must be an int"),
        ({"val_fraction": 1.0}, ValueError, r"data.val_fraction must be in \[0.0, 1.0\), got 1.0"),
        ({"val_fraction": -0.1}, ValueError, r"data.val_fraction"),
        ({"scenario": "split", "num_tasks": 11}, ValueError, r"num_tasks=11 exceeds the 10"),
        (
            {"scenario": "split", "num_tasks": 3, "class_order": (0, 1)},
            ValueError,
            r"num_tasks=3 exceeds the 2 classes",
        ),
        ({"scenario": "split", "class_order": (0, 10)}, ValueError, r"invalid entries \[10\]"),
        ({"scenario": "split", "class_order": (1, 1, 2)}, ValueError, r"repeats a class"),
        ({"class_order": (0, 1)}, ValueError, r"class_order.*only applies to scenario 'split'"),
        ({"scenario": "rotated", "angles": (0.0,)}, ValueError, r"1 entries but data.num_tasks=5"),
        ({"angles": (0,) * 5}, ValueError, r"only applies to scenario 'rotated'"),
        ({"train_subset": 0}, ValueError, r"data.train_subset must be an int >= 1, got 0"),
        ({"download": "yes"}, TypeError, r"data.download must be a bool \(true or false\)"),
    ],
)
def test_invalid_configs_name_key_and_value(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        validate_config(DataConfig(**kwargs), seed=0)


def test_negative_seed_rejected():
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        build_continual_data(DataConfig(), seed=-1)


def test_tiny_training_pool_keeps_its_training_sample():
    config = DataConfig(num_tasks=1, train_subset=1, val_fraction=0.5)
    data = build_continual_data(config, seed=0)
    assert len(data.tasks[0].train) == 1 and len(data.tasks[0].val) == 0


def test_every_preset_is_a_valid_flat_data_config():
    yaml = pytest.importorskip("yaml")
    from pathlib import Path

    import hatcl

    presets = sorted((Path(hatcl.__file__).parent / "conf" / "data").glob("*.yaml"))
    names = {p.stem for p in presets}
    assert {
        "permuted_digits",
        "split_digits",
        "permuted_fashion_mnist",
        "split_fashion_mnist",
        "rotated_fashion_mnist",
        "permuted_mnist",
        "split_cifar10",
        "split_cifar100",
        "permuted_mnist1d",
    } <= names
    for path in presets:
        if path.stem == "custom":  # a user's task sequence: tests/wrap/test_wrap_cli.py
            continue
        config = DataConfig.from_mapping(yaml.safe_load(path.read_text()))
        validate_config(config, seed=0)
        assert path.stem == f"{config.scenario}_{config.source}", path
    assert (
        DataConfig.from_mapping(
            yaml.safe_load((presets[0].parent / "permuted_digits.yaml").read_text())
        )
        == DataConfig()
    ), "the default preset must equal the DataConfig defaults"


def test_a_source_without_its_info_is_refused_by_name():
    from hatcl.registry import Registry

    registry = Registry("data source")
    registry.add("bare", "x:y", summary="no info")
    assert registry.info("bare") is None
    SOURCES.add("test_bare_source", "hatcl.data.sources.digits:load_digits", summary="no info")
    try:
        with pytest.raises(TypeError, match="'test_bare_source' is registered without"):
            source_info("test_bare_source")
    finally:
        SOURCES._entries.pop("test_bare_source")


def test_the_digits_info_is_what_loading_gives():
    from hatcl.data.sources.digits import load_digits

    source = load_digits()
    info = source_info("digits")
    assert (source.num_classes, tuple(source.train_x.shape[1:])) == (10, (1, 8, 8)) == (
        info.num_classes,
        info.input_shape,
    )
