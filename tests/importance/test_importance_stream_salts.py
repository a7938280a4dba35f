"""Attribution random streams are keyed by method name, not by position in the method table."""

from __future__ import annotations

import ast
from pathlib import Path

from hatcl.importance.attribution import measures


def test_every_method_has_its_own_salt():
    salts = [measures._SALTS[name] for name in measures.SHARED_METHODS]
    assert len(set(salts)) == len(salts)


def test_seeds_are_the_formula_written_out():
    # ((task * 1_000_003 + step) * 8191 + salt) mod 2^62, deepliftshap's salt is 4
    expected = ((2 * 1_000_003 + 7) * 8191 + 4) % (2**62)
    assert measures.step_seed(task_id=2, step=7, method="deepliftshap") == expected
    expected = ((1 * 1_000_003 + 0) * 8191 + 5) % (2**62)
    assert measures.step_seed(task_id=1, step=0, method="gradientshap") == expected


def test_the_salts_are_written_out_by_name_not_derived_from_order():
    """A literal table: a method added anywhere in SHARED_METHODS cannot shift another's salt."""
    tree = ast.parse(Path(measures.__file__).read_text(encoding="utf-8"))
    value = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", None) == "_SALTS" for t in node.targets)
    )
    assert isinstance(value, ast.Dict)
    assert all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys)
    # today's draws: the salts the methods had when they were numbered by position
    assert measures._SALTS == {name: i + 1 for i, name in enumerate(HISTORICAL_ORDER)}


HISTORICAL_ORDER = (
    "gradient_x_activation",
    "gradcam",
    "deeplift",
    "deepliftshap",
    "gradientshap",
    "integrated_gradients",
    "conductance",
    "internal_influence",
    "feature_ablation",
    "lrp",
)
