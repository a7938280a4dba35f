"""Parity with captum.module (0.9.0) as oracle: same seed, same outputs, regulariser, gradients."""

import pytest
import torch
from captum.module import BinaryConcreteStochasticGates as CaptumConcrete
from captum.module import GaussianStochasticGates as CaptumGaussian

from hatcl.gates import BinaryConcreteStochasticGates, GaussianStochasticGates

PAIRS = {
    "gaussian": (CaptumGaussian, GaussianStochasticGates, {"std": 0.4}),
    "binary_concrete": (CaptumConcrete, BinaryConcreteStochasticGates, {"temperature": 0.5}),
}
LAYOUTS = {
    "none": (None, (3, 2, 3), 6),
    "grouped": (torch.tensor([[0, 1, 1], [2, 2, 0]]), (3, 2, 3), 3),
    "per_channel": (torch.arange(4).reshape(4, 1, 1), (3, 4, 2, 2), 4),
    "batch_dim": (torch.tensor([[0, 1, 2], [2, 1, 0], [1, 1, 0]]), (3, 3), 3),
}


def _run(gate_class, n_gates, mask, shape, reduction, extra):
    torch.manual_seed(21)
    x = torch.randn(shape, requires_grad=True)
    gates = gate_class(n_gates, mask, 0.7, reg_reduction=reduction, **extra)
    outputs = []
    for mode in ("train", "train", "eval"):
        gates.train(mode == "train")
        gated, reg = gates(x)
        outputs += [gated, reg]
    (outputs[0].square().sum() + outputs[1].sum()).backward()
    grads = [next(iter(gates.parameters())).grad, x.grad]
    return outputs, grads, gates


# Captum's binary-concrete gates cannot back-propagate reg_reduction="none" (an in-place multiply
# on a saved sigmoid output); that case is checked by hand below.
CASES = [
    (kind, reduction, layout)
    for kind in PAIRS
    for reduction in ("sum", "mean", "none")
    for layout in LAYOUTS
    if not (kind == "binary_concrete" and reduction == "none")
]


@pytest.mark.parametrize(("kind", "reduction", "layout"), CASES)
def test_same_seed_same_outputs_and_grads(kind, reduction, layout):
    captum_class, hatcl_class, extra = PAIRS[kind]
    mask, shape, n_gates = LAYOUTS[layout]
    ref_out, ref_grads, ref = _run(captum_class, n_gates, mask, shape, reduction, extra)
    out, grads, ours = _run(hatcl_class, n_gates, mask, shape, reduction, extra)
    for expected, actual in zip(ref_out + ref_grads, out + grads):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    torch.testing.assert_close(ours.get_gate_values(), ref.get_gate_values())
    torch.testing.assert_close(ours.get_gate_values(clamp=False), ref.get_gate_values(clamp=False))
    torch.testing.assert_close(ours.get_gate_active_probs(), ref.get_gate_active_probs())


def test_captum_concrete_none_fails_but_ours_backpropagates():
    torch.manual_seed(0)
    captum_gates = CaptumConcrete(3, reg_reduction="none")
    _, reg = captum_gates(torch.randn(2, 3))
    with pytest.raises(RuntimeError):
        reg.sum().backward()
    torch.manual_seed(0)
    gates = BinaryConcreteStochasticGates(3, reg_weight=0.5, reg_reduction="none")
    _, reg = gates(torch.randn(2, 3))
    reg.sum().backward()
    p = torch.sigmoid(gates.log_alpha_param.detach() - (2 / 3) * torch.log(torch.tensor(1 / 11)))
    torch.testing.assert_close(gates.log_alpha_param.grad, 0.5 * p * (1 - p))


@pytest.mark.parametrize("kind", PAIRS)
def test_state_dicts_interchange(kind):
    captum_class, hatcl_class, _ = PAIRS[kind]
    mask = torch.tensor([0, 1, 1, 2])
    torch.manual_seed(1)
    ref = captum_class(3, mask=mask)
    ours = hatcl_class(3, mask=torch.tensor([2, 1, 0, 0]))
    ours.load_state_dict(ref.state_dict())
    ref_again = captum_class(3, mask=mask)
    ref_again.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4)
    torch.testing.assert_close(ours.eval()(x)[0], ref.eval()(x)[0])
    torch.testing.assert_close(ref_again.get_gate_values(), ref.get_gate_values())


@pytest.mark.parametrize("kind", PAIRS)
def test_from_pretrained_matches_captum(kind):
    captum_class, hatcl_class, extra = PAIRS[kind]
    values = torch.tensor([-2.0, 0.1, 0.6, 2.5])
    ref = captum_class._from_pretrained(values, reg_weight=0.2, **extra)
    ours = hatcl_class._from_pretrained(values, reg_weight=0.2, **extra)
    x = torch.randn(2, 4)
    ref_out, ref_reg = ref.eval()(x)
    out, reg = ours.eval()(x)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(reg, ref_reg)
