"""Bad arguments and inputs: a GatesInputError, both ValueError and AssertionError like Captum's.

Each case is run against captum.module (0.9.0) as the oracle of *what* is rejected: Captum raises
``AssertionError`` for it, and hatcl raises :class:`GatesInputError` (caught by code written for
Captum as an ``AssertionError``, by hatcl code as a ``ValueError``), with its own message kept.
"""

from __future__ import annotations

import pytest
import torch
from captum.module import BinaryConcreteStochasticGates as CaptumConcrete
from captum.module import GaussianStochasticGates as CaptumGaussian

from hatcl.gates import BinaryConcreteStochasticGates, GatesInputError, GaussianStochasticGates

PAIRS = {
    "gaussian": (CaptumGaussian, GaussianStochasticGates),
    "binary_concrete": (CaptumConcrete, BinaryConcreteStochasticGates),
}


def _forward(n_gates, shape, mask=None):
    return lambda cls: cls(n_gates, mask)(torch.randn(shape))


#: name -> (what is done with a gate class, a phrase of hatcl's message)
SHARED_CASES = {
    "1-D input": (_forward(3, (3,)), "at least 2 dimensions"),
    "too few gates for the input": (_forward(3, (2, 4)), "n_gates is 3"),
    "too many gates for the input": (_forward(5, (2, 4)), "n_gates is 5"),
    "mask with fewer distinct values than gates": (
        lambda cls: cls(4, torch.tensor([0, 1, 1])),
        "n_gates - 1 = 3",
    ),
    "unknown reg_reduction": (lambda cls: cls(3, reg_reduction="max"), "reg_reduction"),
}
GAUSSIAN_CASES = {
    "zero std": (lambda cls: cls(3, std=0.0), "std"),
    "negative std": (lambda cls: cls(3, std=-1.0), "std"),
}
CONCRETE_CASES = {
    "temperature 1": (lambda cls: cls(3, temperature=1.0), "temperature"),
    "temperature 0": (lambda cls: cls(3, temperature=0.0), "temperature"),
    "lower bound 0": (lambda cls: cls(3, lower_bound=0.0), "lower_bound"),
    "upper bound 1": (lambda cls: cls(3, upper_bound=1.0), "upper_bound"),
    "2-D pretrained log_alpha": (lambda cls: cls._from_pretrained(torch.zeros(2, 2)), "1-D"),
}
CASES = [
    *((kind, name, *case) for kind in PAIRS for name, case in SHARED_CASES.items()),
    *(("gaussian", name, *case) for name, case in GAUSSIAN_CASES.items()),
    *(("binary_concrete", name, *case) for name, case in CONCRETE_CASES.items()),
]


@pytest.mark.parametrize(
    ("kind", "name", "action", "phrase"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES]
)
def test_what_captum_asserts_on_is_a_gates_input_error(kind, name, action, phrase):
    captum_class, hatcl_class = PAIRS[kind]
    with pytest.raises(AssertionError):
        action(captum_class)  # the oracle: Captum rejects this input
    with pytest.raises(GatesInputError, match=phrase) as caught:
        action(hatcl_class)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, AssertionError)


def test_code_written_for_captum_catches_it():
    try:
        GaussianStochasticGates(3)(torch.randn(3))
    except AssertionError as error:  # how Captum users guard a forward
        assert "shape (3,)" in str(error)
    else:  # pragma: no cover - the forward must fail
        pytest.fail("a 1-D input was accepted")


def test_good_input_raises_nothing():
    gated, reg = GaussianStochasticGates(3, torch.tensor([0, 1, 2]))(torch.randn(2, 3))
    assert gated.shape == (2, 3) and reg.dim() == 0
