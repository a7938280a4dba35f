"""On-disk cache of decoded source tensors: round trip, atomic writes, corrupt files."""

from __future__ import annotations

import pytest
import torch

from hatcl.data.base import DataConfig, build_continual_data
from hatcl.data.cache import cache_path, cached_source, read_cache
from hatcl.data.sources.digits import load_digits


def test_round_trip_returns_identical_tensors_without_reloading(tmp_path):
    calls = []

    def load():
        calls.append(1)
        return load_digits()

    first = cached_source(name="digits", cache_dir=str(tmp_path), load=load)
    second = cached_source(name="digits", cache_dir=str(tmp_path), load=load)
    assert len(calls) == 1
    for key in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, key), getattr(second, key))
    assert (second.name, second.num_classes) == ("digits", 10)
    assert second.mean == pytest.approx(first.mean) and second.std == pytest.approx(first.std)
    # only the cache file itself, no temporary leftovers
    assert [p.name for p in tmp_path.iterdir()] == [cache_path(tmp_path, "digits").name]


def test_build_with_cache_matches_build_without(tmp_path):
    config = DataConfig(num_tasks=2, cache_dir=str(tmp_path))
    cached = build_continual_data(config, seed=1)
    again = build_continual_data(config, seed=1)
    plain = build_continual_data(DataConfig(num_tasks=2), seed=1)
    for a, b, c in zip(cached.tasks, again.tasks, plain.tasks):
        assert torch.equal(a.train.x, c.train.x) and torch.equal(b.test.x, c.test.x)


def test_corrupt_cache_is_reported_and_rebuilt(tmp_path):
    path = cache_path(tmp_path, "digits")
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=f"cannot read data cache {path}"):
        read_cache(path)
    with pytest.warns(UserWarning, match="ignoring unreadable data cache"):
        source = cached_source(name="digits", cache_dir=str(tmp_path), load=load_digits)
    assert source.train_x.shape == (1437, 1, 8, 8)
    assert read_cache(path).train_x.shape == (1437, 1, 8, 8)


def test_failed_load_leaves_no_cache(tmp_path):
    def load():
        raise FileNotFoundError("files missing")

    with pytest.raises(FileNotFoundError):
        cached_source(name="mnist", cache_dir=str(tmp_path / "c"), load=load)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())
