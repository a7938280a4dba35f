"""Helpers shared by the wrap tests: known embeddings, and one task trained through the Learner."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCALE = 3.0


def set_distinct_embeddings(backbone) -> dict[str, torch.Tensor]:
    """Distinct embeddings per key; returns the masks ``sigmoid(SCALE * e)`` written out."""
    masks = {}
    for index, (key, embedding) in enumerate(backbone.masker.embeddings.items()):
        values = torch.linspace(-1.0, 1.0, embedding.numel()) + 0.3 * (index + 1)
        embedding.data = values.reshape(embedding.shape)
        masks[key] = torch.sigmoid(SCALE * values)
    return masks


def train_task(learner, x, y, *, epochs: int = 2, lr: float = 0.01, batch: int = 16) -> None:
    """The started task's steps as a user's own loop writes them, then ``end_task``; the learner
    is left in eval mode."""
    optimizer = torch.optim.Adam(learner.trainable_parameters(), lr=lr)
    learner.train()
    for _ in range(epochs):
        for xb, yb in zip(x.split(batch), y.split(batch)):
            optimizer.zero_grad()
            loss = F.cross_entropy(learner(xb, yb), yb) + learner.penalty()
            loss.backward()
            learner.before_optimizer_step()
            optimizer.step()
            learner.after_optimizer_step()
    learner.end_task()
    learner.eval()
