"""Whether a run folder can be resumed with a configuration: its ``config.yaml`` compared."""

from __future__ import annotations

import os
from pathlib import Path

from hatcl.mappings import flatten_mapping

RESUME_IGNORED_KEYS = ("output_dir", "resume")


def check_resumable(run_dir: str | os.PathLike[str], *, config_text: str) -> Path:
    """Check that ``run_dir`` holds an unfinished run of the same configuration; return it.

    Raises:
        FileNotFoundError: ``run_dir`` or its ``config.yaml`` does not exist.
        ValueError: the run is complete, or its configuration differs from ``config_text`` (the
            message names every differing key; ``output_dir`` and ``resume`` are ignored).
    """
    folder = Path(run_dir)
    saved = folder / "config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(
            f"resume={str(folder)!r} is not a run folder (no config.yaml): pass the folder of "
            "the interrupted run"
        )
    if (folder / "metrics.json").exists():
        raise ValueError(
            f"resume={str(folder)!r} is a finished run (metrics.json exists); nothing to resume"
        )
    differences = config_differences(read_config_text(saved), config_text)
    if differences:
        raise ValueError(
            f"resume={str(folder)!r} was run with another configuration; differing keys: "
            f"{'; '.join(differences)}. Pass the same overrides as the interrupted run"
        )
    return folder


def read_config_text(path: Path) -> str:
    """The text of a run folder's ``config.yaml``; ``ValueError`` naming it if it is no mapping."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        loaded = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        detail = " ".join(str(error).split())[:200]
        raise ValueError(
            f"{str(path)!r} cannot be read as a hatcl configuration ({detail}); the run folder's "
            "config.yaml is damaged: restore it or start a new run"
        ) from None
    if not isinstance(loaded, dict):
        raise ValueError(
            f"{str(path)!r} is not a hatcl configuration (it holds {type(loaded).__name__}, not a "
            "mapping of keys); the run folder's config.yaml is damaged: restore it or start a "
            "new run"
        )
    return text


def config_differences(saved: str, current: str) -> list[str]:
    """``key (saved X, now Y)`` for every dotted key whose value differs between two YAMLs."""
    import yaml

    before = flatten_mapping(yaml.safe_load(saved) or {})
    after = flatten_mapping(yaml.safe_load(current) or {})
    keys = sorted(
        key
        for key in set(before) | set(after)
        if key.split(".")[0] not in RESUME_IGNORED_KEYS and before.get(key) != after.get(key)
    )
    return [f"{key} (saved {before.get(key)!r}, now {after.get(key)!r})" for key in keys]
