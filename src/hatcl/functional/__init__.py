"""Pure tensor functions of the HAT family (no state, nothing of hatcl imported).

Modules, imported on demand:

- ``annealing``: the per-batch annealed gate scale ``s(b)``.
- ``hat_gate``: soft gates ``sigmoid(s * e)`` and binary masks ``1[e > 0]``.
- ``compensation``: the embedding-gradient compensation factor.
- ``aggregation``: neuron-wise to parameter-wise broadcast (min, max, mean).
- ``rates``: gradient adjustment rates of HAT, AdaHAT and FG-AdaHAT, and scheduler factors.
- ``sparsity``: the mask sparsity regularisers (``original``, ``cross``).
- ``reductions``: fan-in, fan-out, batch-abs-mean and min-max normalisation.
- ``summing``: task-importance summing weights and additive strategies.

This package file imports nothing eagerly, so ``import hatcl.functional`` stays cheap.
"""
