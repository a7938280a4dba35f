"""In-place initialisers of task embeddings, one per ``task_embedding_init_mode``."""

import torch


@torch.no_grad()
def init_normal(embedding: torch.Tensor) -> None:
    """Draw from normal(0, 1)."""
    embedding.normal_(0.0, 1.0)


@torch.no_grad()
def init_uniform_sym(embedding: torch.Tensor) -> None:
    """Draw from uniform(-1, 1)."""
    embedding.uniform_(-1.0, 1.0)


@torch.no_grad()
def init_uniform_pos(embedding: torch.Tensor) -> None:
    """Draw from uniform(0, 1)."""
    embedding.uniform_(0.0, 1.0)


@torch.no_grad()
def init_uniform_neg(embedding: torch.Tensor) -> None:
    """Draw from uniform(-1, 0)."""
    embedding.uniform_(-1.0, 0.0)


def init_keep_last(embedding: torch.Tensor) -> None:
    """Keep the previous task's values (the constructor's N(0, 1) draw at task 1)."""
