"""Feature selection with input gates: a small MLP classifier behind a gate layer.

Reproduces the two-moons experiment of Yamada et al. (2020): two informative features among many
Gaussian nuisance features; after training with the L0 regulariser the informative gates are
open and every nuisance gate is closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hatcl.gates.base import StochasticGatesBase
from hatcl.gates.kinds import GATES
from hatcl.validation import check_fraction, check_int, check_number


@dataclass(frozen=True)
class FeatureSelection:
    """The outcome of ``select_features``.

    Attributes:
        gate: the gate kind used (a ``GATES`` name).
        selected: indices of the features whose clamped gate value exceeds ``threshold``.
        gate_values: clamped gate means per feature, in [0, 1].
        active_probs: probability that each gate is non-zero.
        accuracy: accuracy of the trained classifier in eval mode (on the evaluation data if
            given, else on the training data).
        threshold: the gate value above which a feature counts as selected.
    """

    gate: str
    selected: tuple[int, ...]
    gate_values: tuple[float, ...]
    active_probs: tuple[float, ...]
    accuracy: float
    threshold: float


class GatedClassifier(nn.Module):
    """An MLP classifier whose input features pass through one stochastic gate each.

    Args:
        n_features: number of input features (one gate per feature).
        n_classes: number of output classes.
        hidden: widths of the hidden layers (tanh activations).
        gate: gate kind, a name of ``GATES``.
        gate_kwargs: further keyword arguments of the gate class (e.g. ``reg_weight``).
    """

    def __init__(
        self,
        *,
        n_features: int,
        n_classes: int,
        hidden: Sequence[int] = (60, 20),
        gate: str = "gaussian",
        gate_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        gate_class = GATES.resolve(gate, parameter="gate")
        self.gates: StochasticGatesBase = gate_class(n_features, **dict(gate_kwargs or {}))
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Return the logits and the gates' L0 regulariser."""
        gated, l0_reg = self.gates(features)
        return self.mlp(gated), l0_reg


def select_features(
    *,
    features: Tensor,
    labels: Tensor,
    gate: str = "gaussian",
    hidden: Sequence[int] = (60, 20),
    epochs: int = 600,
    lr: float = 0.01,
    reg_weight: float = 0.5,
    threshold: float = 0.5,
    seed: int = 0,
    gate_kwargs: Mapping[str, Any] | None = None,
    eval_features: Tensor | None = None,
    eval_labels: Tensor | None = None,
) -> FeatureSelection:
    """Train a gated MLP classifier (full batch, Adam) and report the selected input features.

    The loss is cross-entropy plus ``reg_weight`` times the mean active probability of the gates.
    The global random state is left untouched: training runs on a forked generator seeded with
    ``seed``.

    Args:
        features: float tensor (n_samples, n_features).
        labels: integer class labels (n_samples,).
        gate: gate kind, a name of ``GATES`` (``"gaussian"`` | ``"binary_concrete"``).
        hidden: hidden layer widths of the classifier.
        epochs: number of full-batch training steps (>= 1).
        lr: Adam learning rate (> 0).
        reg_weight: weight of the L0 regulariser (>= 0).
        threshold: clamped gate value above which a feature counts as selected, in [0, 1).
        seed: seed of the forked generator used for initialisation and gate noise.
        gate_kwargs: further gate arguments (e.g. ``std`` or ``temperature``).
        eval_features: optional held-out features for the reported accuracy.
        eval_labels: labels of ``eval_features``.

    Returns:
        The selected features, gate values, active probabilities and accuracy.

    Raises:
        ValueError: on an unknown gate kind or an invalid argument (named in the message).
    """
    _check_data("features", "labels", features, labels)
    if (eval_features is None) != (eval_labels is None):
        raise ValueError("eval_features and eval_labels must be given together")
    if eval_features is not None:
        _check_data("eval_features", "eval_labels", eval_features, eval_labels)
    GATES.validate(gate, parameter="gate")
    check_int(epochs, parameter="epochs", low=1)
    check_number(lr, parameter="lr", low=0.0, low_inclusive=False)
    check_fraction(threshold, parameter="threshold")
    gate_args = {"reg_weight": reg_weight, "reg_reduction": "mean", **dict(gate_kwargs or {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GatedClassifier(
            n_features=features.shape[1],
            n_classes=int(labels.max()) + 1,
            hidden=hidden,
            gate=gate,
            gate_kwargs=gate_args,
        )
        _train(model, features, labels.long(), epochs=epochs, lr=lr)
    model.eval()
    test_x, test_y = (features, labels) if eval_features is None else (eval_features, eval_labels)
    with torch.no_grad():
        accuracy = (model(test_x)[0].argmax(dim=1) == test_y).float().mean().item()
    values = model.gates.get_gate_values()
    return FeatureSelection(
        gate=gate,
        selected=tuple(int(i) for i in torch.nonzero(values > threshold).flatten()),
        gate_values=tuple(values.tolist()),
        active_probs=tuple(model.gates.get_gate_active_probs().tolist()),
        accuracy=accuracy,
        threshold=float(threshold),
    )


def make_two_moons(
    *, n_samples: int = 1000, n_nuisance: int = 18, noise: float = 0.1, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Two-moons data with Gaussian nuisance features, every column standardised.

    Features 0 and 1 are scikit-learn's ``make_moons``; the other ``n_nuisance`` columns are
    independent standard normals carrying no label information.

    Returns:
        ``(features, labels)``: float32 (n_samples, 2 + n_nuisance) and int64 (n_samples,).
    """
    import numpy as np
    from sklearn.datasets import make_moons

    if not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if not isinstance(n_nuisance, int) or n_nuisance < 0:
        raise ValueError(f"n_nuisance must be an integer >= 0, got {n_nuisance!r}")
    moons, labels = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    nuisance = np.random.default_rng(seed).standard_normal((n_samples, n_nuisance))
    data = np.concatenate([moons, nuisance], axis=1)
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    return torch.as_tensor(data, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)


def _train(model: GatedClassifier, features: Tensor, labels: Tensor, *, epochs: int, lr: float):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        optimizer.zero_grad()
        logits, l0_reg = model(features)
        (loss_fn(logits, labels) + l0_reg).backward()
        optimizer.step()


def _check_data(x_name: str, y_name: str, features: Any, labels: Any) -> None:
    if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(
            f"{x_name} must be a 2-D float tensor (n_samples, n_features), got {shape}"
        )
    valid_labels = (
        isinstance(labels, Tensor) and labels.dim() == 1 and not labels.is_floating_point()
    )
    if not valid_labels or labels.shape[0] != features.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"{y_name} must be a 1-D integer tensor with one label per row of {x_name} "
            f"({features.shape[0]}), got {shape}"
        )
