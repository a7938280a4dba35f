"""Finetuning: train each task with no protection of earlier ones (the lower reference)."""

from hatcl.algorithms.base import Algorithm


class Finetuning(Algorithm):
    """Plain sequential training of one network; forgets earlier tasks."""

    def __init__(self) -> None:
        super().__init__()
