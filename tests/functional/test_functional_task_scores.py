"""Task scores hand-computed on fixed logits; the affine calibration vs a brute-force optimum."""

from __future__ import annotations

import math

import pytest
import torch

from hatcl.functional.task_scores import (
    calibration_loss,
    energy,
    fit_affine,
    max_logit,
    max_softmax,
    neg_entropy,
    predict_task,
)

LOGITS = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)


def _by_hand() -> dict[str, list[float]]:
    """The four scores of LOGITS written out from their definitions (spec table)."""
    z = math.exp(1) + math.exp(2) + math.exp(3)
    p = [math.exp(1) / z, math.exp(2) / z, math.exp(3) / z]
    return {
        "max_softmax": [math.exp(3) / z, 1 / 3],
        "max_logit": [3.0, 0.0],
        "energy": [math.log(z), math.log(3.0)],
        "neg_entropy": [sum(q * math.log(q) for q in p), 3 * (1 / 3) * math.log(1 / 3)],
    }


@pytest.mark.parametrize(
    ("name", "score"),
    [
        ("max_softmax", max_softmax),
        ("max_logit", max_logit),
        ("energy", energy),
        ("neg_entropy", neg_entropy),
    ],
)
def test_each_score_equals_its_hand_computed_value(name, score):
    assert score(LOGITS).tolist() == pytest.approx(_by_hand()[name], abs=1e-12)


def test_neg_entropy_of_a_one_hot_prediction_is_zero_and_uniform_is_minus_log_k():
    confident = torch.tensor([[0.0, 1e4]])
    assert neg_entropy(confident).item() == pytest.approx(0.0, abs=1e-9)
    assert neg_entropy(torch.zeros(1, 4)).item() == pytest.approx(-math.log(4))


def test_predict_task_takes_the_best_score_and_ties_go_to_the_lower_task():
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.7, 0.2], [0.3, 0.3, 0.3], [0.0, 0.2, 0.2]])
    assert predict_task(scores).tolist() == [1, 0, 0, 1]


def _toy() -> tuple[torch.Tensor, torch.Tensor]:
    """Two tasks, noisy and overlapping (a finite optimum); task 2's scores run 0.4 high."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(40, 2, generator=generator, dtype=torch.float64) * 0.15
    own, other = 0.7, 0.45
    first = torch.tensor([own, other + 0.4], dtype=torch.float64) + noise[:20]
    second = torch.tensor([other, own + 0.4], dtype=torch.float64) + noise[20:]
    return torch.cat([first, second]), torch.tensor([0] * 20 + [1] * 20)


def _grid_losses(scores: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
    """The calibration loss of every (w_1, w_2, b) of a grid, b_1 = -b, b_2 = b (vectorised)."""
    w = torch.linspace(-20, 20, 101, dtype=torch.float64)
    b = torch.linspace(-15, 15, 121, dtype=torch.float64)
    w1, w2, bb = torch.meshgrid(w, w, b, indexing="ij")
    weight = torch.stack([w1.flatten(), w2.flatten()], dim=1)  # (G, 2)
    bias = torch.stack([-bb.flatten(), bb.flatten()], dim=1)
    logits = scores[None] * weight[:, None] + bias[:, None]  # (G, N, 2)
    log_p = torch.log_softmax(logits, dim=-1)
    return -log_p.gather(2, tasks[None, :, None].expand(len(weight), -1, 1)).mean(dim=(1, 2))


def test_affine_calibration_reaches_the_brute_force_optimum():
    scores, tasks = _toy()
    weight, bias = fit_affine(scores, tasks)
    fitted = calibration_loss(scores, tasks, weight, bias).item()
    best = _grid_losses(scores, tasks).min().item()
    assert fitted <= best + 1e-9  # no grid point beats the fit
    assert fitted == pytest.approx(best, abs=0.02)  # and the grid comes close to it
    assert float(bias.sum()) == pytest.approx(0.0, abs=1e-9)  # the gauge: b sums to 0
    raw = calibration_loss(scores, tasks, torch.ones(2).double(), torch.zeros(2).double())
    assert fitted < raw.item()
    raw_hits = (predict_task(scores) == tasks).double().mean().item()
    calibrated_hits = (predict_task(scores * weight + bias) == tasks).double().mean().item()
    assert raw_hits < 0.75 < calibrated_hits


def test_affine_calibration_of_one_task_is_any_solution_with_zero_loss():
    scores = torch.rand(5, 1, dtype=torch.float64)
    weight, bias = fit_affine(scores, torch.zeros(5, dtype=torch.long))
    assert calibration_loss(scores, torch.zeros(5, dtype=torch.long), weight, bias).item() == 0.0
