"""HAT, AdaHAT and FG-AdaHAT gradient adjustment after a real training step, against docs/spec.md.

Every expected value is written out here from docs/spec.md (§1, §2, §4, §5), with
no call into hatcl's functional code: the annealed scale, the soft masks, the network sparsity
R_l (wide layers, so the 10-unit guard is crossed in both directions), the parameter-wise
importance and the rates. Only the algorithms' public API is used: constructors, the task hooks,
and :func:`run_training_step` for the step. Earlier tasks are finished through the hooks too
(their binary masks are ``1[e > 0]`` of embeddings set by the test).

Raw gradients come from a copy of the model before the step (cross-entropy only: the mask
sparsity term does not reach backbone weights); the step's adjusted gradients must equal raw
gradient x rate.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from hatcl.algorithms.adahat import AdaHAT
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.algorithms.hat import HAT
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.training.step import run_training_step

KEYS = ("fc1", "fc2", "fc3")
WIDTHS = (12, 14, 24)
INPUTS = 3
S_MAX = 4.0
GUARD = 10  # docs/spec.md §2: a denominator of 10 units or fewer gives 0


def _model() -> ContinualModel:
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(INPUTS,), hidden_dims=WIDTHS, masked=True)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=WIDTHS[-1]))
    for task_id in (1, 2, 3):
        model.setup_task(task_id=task_id, num_classes=2)
    return model.to(torch.float64)


def _embeddings(used: dict[str, int], *, seed: int) -> dict[str, torch.Tensor]:
    """Embeddings whose first ``used[key]`` units are positive (on), the rest negative."""
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for key, width in zip(KEYS, WIDTHS):
        magnitude = 0.2 + torch.rand(width, generator=generator, dtype=torch.float64)
        sign = torch.where(torch.arange(width) < used[key], 1.0, -1.0).to(torch.float64)
        result[key] = sign * magnitude
    return result


def _set_embeddings(model: ContinualModel, values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for key, value in values.items():
            model.backbone.masker.embeddings[key].copy_(value)


def _finish_task(algorithm, model, *, task_id: int, used: dict[str, int], seed: int) -> None:
    """A task with no steps whose stored mask is on for the first ``used`` units per layer."""
    algorithm.on_task_start(task_id=task_id, model=model)
    _set_embeddings(model, _embeddings(used, seed=seed))
    algorithm.on_task_end(task_id=task_id, model=model, task_data=None)


def _binary(used: dict[str, int]) -> dict[str, torch.Tensor]:
    return {
        key: (torch.arange(width) < used[key]).to(torch.float64) for key, width in zip(KEYS, WIDTHS)
    }


def _scale(batch_index: int, num_batches: int) -> float:
    """docs/spec.md §1 annealing."""
    return 1 / S_MAX + (S_MAX - 1 / S_MAX) * batch_index / (num_batches - 1)


def _batch(seed: int):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(8, INPUTS, generator=generator, dtype=torch.float64)
    return inputs, torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])


def _raw_gradients(model, inputs, targets, *, task_id: int, scale: float):
    """d cross-entropy / d (weights, biases) of every backbone linear layer, on a copy."""
    twin = copy.deepcopy(model)
    logits = twin(inputs, task_id=task_id, stage=Stage.TRAIN, scale=scale).logits
    F.cross_entropy(logits, targets).backward()
    return [
        (linear.weight.grad.clone(), linear.bias.grad.clone()) for linear in twin.backbone.linears
    ]


def _step(algorithm, model, *, task_id: int, batch_index: int = 1, num_batches: int = 3, seed=5):
    """One real step (SGD with lr 0: the weights stay, the adjusted gradients remain)."""
    inputs, targets = _batch(seed)
    scale = _scale(batch_index, num_batches)
    raw = _raw_gradients(model, inputs, targets, task_id=task_id, scale=scale)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    run_training_step(
        model=model,
        algorithm=algorithm,
        optimizer=optimizer,
        inputs=inputs,
        targets=targets,
        task_id=task_id,
        batch_index=batch_index,
        num_batches=num_batches,
    )
    adjusted = [(linear.weight.grad, linear.bias.grad) for linear in model.backbone.linears]
    return raw, adjusted, scale


def _network_sparsity(soft, cumulative, mode: str) -> list[float]:
    """docs/spec.md §2 per-layer R_l."""
    result = []
    for key in KEYS:
        m, cum = soft[key], cumulative[key]
        available, occupied = float((1 - cum).sum()), float((m * (1 - cum)).sum())
        used, reused = float(cum.sum()), float((m * cum).sum())
        free = occupied / available if available > GUARD else 0.0
        if mode == "original":
            result.append(free)
        else:
            reuse = 1 - reused / used if used > GUARD else 0.0
            result.append((free + reuse) / 2)
    return result


def _parameter_wise(values: dict[str, torch.Tensor], aggregate=torch.minimum):
    """docs/spec.md §1: weight (i, j) of layer l gets Agg(v_l,i, v_l-1,j); layer 1, biases v_l,i."""
    result = []
    for index, key in enumerate(KEYS):
        unit = values[key]
        if index == 0:
            weight = unit[:, None].expand(-1, INPUTS)
        else:
            weight = aggregate(unit[:, None], values[KEYS[index - 1]][None, :])
        result.append((weight, unit))
    return result


def _assert_adjusted(raw, adjusted, rates, *, rtol: float = 1e-12) -> None:
    for layer, ((rw, rb), (aw, ab), (pw, pb)) in enumerate(zip(raw, adjusted, rates)):
        torch.testing.assert_close(aw, rw * pw, rtol=rtol, atol=1e-15, msg=f"weight {layer}")
        torch.testing.assert_close(ab, rb * pb, rtol=rtol, atol=1e-15, msg=f"bias {layer}")


def _capacity(rates) -> float:
    total = sum(float(w.sum()) + float(b.sum()) for w, b in rates)
    count = sum(w.numel() + b.numel() for w, b in rates)
    return total / count


# Earlier tasks. Cumulative after task 2: fc1 1 of 12 used (A = 11 > 10, P = 1 <= 10),
# fc2 4 of 14 (A = 10: guarded), fc3 12 of 24 (A = 12, P = 12: both ratios live).
TASK1 = {"fc1": 1, "fc2": 2, "fc3": 12}
TASK2 = {"fc1": 1, "fc2": 4, "fc3": 6}


@pytest.mark.parametrize("sparsity_mode", ["original", "cross"])
def test_adahat_rates_from_a_real_step(sparsity_mode):
    model = _model()
    alpha, epsilon = 0.2, 0.1
    algorithm = AdaHAT(
        adjustment_intensity=alpha,
        epsilon=epsilon,
        s_max=S_MAX,
        mask_sparsity_reg_mode=sparsity_mode,
    )
    _finish_task(algorithm, model, task_id=1, used=TASK1, seed=1)
    _finish_task(algorithm, model, task_id=2, used=TASK2, seed=2)
    algorithm.on_task_start(task_id=3, model=model)
    embeddings = _embeddings({"fc1": 5, "fc2": 7, "fc3": 15}, seed=3)
    _set_embeddings(model, embeddings)
    raw, adjusted, scale = _step(algorithm, model, task_id=3)

    first, second = _binary(TASK1), _binary(TASK2)
    cumulative = {key: torch.maximum(first[key], second[key]) for key in KEYS}
    summative = {key: first[key] + second[key] for key in KEYS}
    soft = {key: torch.sigmoid(scale * value) for key, value in embeddings.items()}
    sparsity = _network_sparsity(soft, cumulative, sparsity_mode)
    assert sparsity[0] > 0 and sparsity[1] == 0.0 and sparsity[2] > 0  # both sides of the guard
    if sparsity_mode == "cross":
        free_only = _network_sparsity(soft, cumulative, "original")
        assert sparsity[0] == pytest.approx(free_only[0] / 2)  # P = 1: no reuse term
        assert sparsity[2] != pytest.approx(free_only[2] / 2)  # P = 12: reuse term counts
    rates = []
    for (importance_w, importance_b), network in zip(_parameter_wise(summative), sparsity):
        r = alpha / (epsilon + network)
        rates.append((r / (importance_w + r), r / (importance_b + r)))
    assert any(float(w.min()) < 0.5 for w, _ in rates)
    _assert_adjusted(raw, adjusted, rates)
    assert algorithm.step_metrics()["capacity"] == pytest.approx(_capacity(rates), rel=1e-12)


# FG-AdaHAT's importance buffers follow the model's dtype, so on this float64 model its rates
# are exact to float64.
@pytest.mark.parametrize(
    ("scheduler", "rtol"), [("linear_sparsity_reg", 1e-12), ("sparsity_reg", 1e-12)]
)
def test_fgadahat_rates_from_real_steps(scheduler, rtol):
    """Task 1 trains one step (importance input_weight_abs_sum), task 2's step is adjusted."""
    model = _model()
    alpha, b_importance, b_sparsity, b_linear = 0.3, 0.05, 0.1, 2.0
    algorithm = FGAdaHAT(
        adjustment_intensity=alpha,
        importance_type="input_weight_abs_sum",
        importance_summing_strategy="add_latest",
        importance_scheduler_type=scheduler,
        neuron_to_weight_importance_aggregation_mode="min",
        mask_sparsity_reg_factor=0.1,
        s_max=S_MAX,
        base_importance=b_importance,
        base_mask_sparsity_reg=b_sparsity,
        base_linear=b_linear,
    )
    # task 1: one step; rates are 1 (no importance yet); its importance is observed
    algorithm.on_task_start(task_id=1, model=model)
    first_embeddings = _embeddings(TASK1, seed=1)
    _set_embeddings(model, first_embeddings)
    raw, adjusted, first_scale = _step(algorithm, model, task_id=1, batch_index=2, num_batches=3)
    _assert_adjusted(raw, adjusted, [(torch.ones_like(w), torch.ones_like(b)) for w, b in raw])
    algorithm.on_task_end(task_id=1, model=model, task_data=None)

    # docs/spec.md §5: u = fan_in |W| (weights unchanged by lr 0), min-max normalised, times the
    # soft training mask of the step; one step, so I^1 = that + b_I; add_latest: I^{<2} = I^1
    importance = {}
    for key, linear in zip(KEYS, model.backbone.linears):
        u = linear.weight.detach().abs().sum(dim=1)
        normalised = (u - u.min()) / (u.max() - u.min() + 1e-8)
        soft = torch.sigmoid(first_scale * first_embeddings[key])
        importance[key] = normalised * soft + b_importance

    algorithm.on_task_start(task_id=2, model=model)
    second_embeddings = _embeddings({"fc1": 4, "fc2": 9, "fc3": 5}, seed=4)
    _set_embeddings(model, second_embeddings)
    raw, adjusted, scale = _step(algorithm, model, task_id=2, seed=6)

    soft = {key: torch.sigmoid(scale * value) for key, value in second_embeddings.items()}
    # cumulative = task 1's mask: fc1 A = 11, fc2 A = 12, fc3 A = 12 (all above the guard)
    sparsity = _network_sparsity(soft, _binary(TASK1), "original")
    assert all(value > 0 for value in sparsity)
    rates = []
    for (importance_w, importance_b), network in zip(_parameter_wise(importance), sparsity):
        factor = network + b_sparsity
        if scheduler == "linear_sparsity_reg":
            factor = (2 + b_linear) * factor
        rates.append(
            (alpha / (factor * importance_w + alpha), alpha / (factor * importance_b + alpha))
        )
    assert any(float(w.min()) < 0.8 for w, _ in rates)
    _assert_adjusted(raw, adjusted, rates, rtol=rtol)
    assert algorithm.step_metrics()["capacity"] == pytest.approx(_capacity(rates), rel=rtol)


def test_hat_random_draws_a_fresh_uniform_rate_for_every_used_entry_and_step():
    model = _model()
    algorithm = HAT(adjustment_mode="hat_random", s_max=S_MAX)
    used = {"fc1": 8, "fc2": 10, "fc3": 12}
    _finish_task(algorithm, model, task_id=1, used=used, seed=1)
    algorithm.on_task_start(task_id=2, model=model)
    _set_embeddings(model, _embeddings({"fc1": 12, "fc2": 14, "fc3": 24}, seed=2))
    protected = _parameter_wise(_binary(used))  # P: 1 where the entry is protected
    draws = []
    for batch_index, seed in ((1, 5), (2, 6)):
        raw, adjusted, _ = _step(algorithm, model, task_id=2, batch_index=batch_index, seed=seed)
        ratios = []  # the drawn U of every protected entry with a non-zero gradient, else nan
        for (rw, rb), (aw, ab), (pw, pb) in zip(raw, adjusted, protected):
            for r, a, p in ((rw, aw, pw), (rb, ab, pb)):
                # rate = U P + (1 - P): free entries keep their gradient exactly
                assert torch.equal(a[p == 0], r[p == 0])
                live = (p == 1) & (r != 0)
                ratios.append(torch.where(live, a / r, torch.nan).flatten())
        ratios = torch.cat(ratios)
        drawn = ratios[~ratios.isnan()]
        assert drawn.numel() > 100
        assert bool(((drawn >= 0) & (drawn < 1)).all())
        assert 0.35 < float(drawn.mean()) < 0.65  # U(0, 1): mean 1/2, sd 0.29 / sqrt(n)
        assert len(torch.unique(drawn)) == drawn.numel()  # one draw per entry
        draws.append(ratios)
    both = ~draws[0].isnan() & ~draws[1].isnan()
    assert int(both.sum()) > 100
    assert bool((draws[0][both] != draws[1][both]).all())  # a fresh draw every step
