"""The ten attribution importance measures (docs/spec.md §6): u_l = bam(attribution of h_l).

Each measure attributes every weighted layer's output h_l (after mask and nonlinearity) to the
target logit of each sample (target = its label) through the current task's head, under the
step's training masks (Stage.TRAIN at the step's scale s), in eval mode, inside
:func:`~hatcl.importance.attribution.bound.attribution_guard`. Random draws (DeepLift SHAP's
reference set, gradient SHAP's path coefficients) come from a generator seeded from the task
and step, never from the training RNG stream.

Two implementations compute the same numbers from the same draws
(:meth:`AttributionImportance.draws`): ``shared`` (default; exact, shared passes, see
:mod:`~hatcl.importance.attribution.shared`) and ``captum_per_layer`` (Captum called once per
layer, the reference's way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from hatcl.functional.reductions import batch_abs_mean
from hatcl.importance.attribution import shared
from hatcl.importance.attribution.bound import BoundLogits, activation_taps, attribution_guard
from hatcl.importance.attribution.per_layer import captum_per_layer
from hatcl.importance.base import ImportanceContext, ImportanceMeasure
from hatcl.masking.stage import Stage

#: Upper bound on the rows of one attribution pass (memory stays flat for large batches).
DEFAULT_INTERNAL_BATCH_SIZE = 4096
IMPLEMENTATIONS = ("shared", "captum_per_layer")


@dataclass(frozen=True)
class AttributionDraws:
    """A method's random inputs at one step, drawn from the step's own generator.

    Attributes:
        references: DeepLift SHAP's reference set (inputs of the batch), else None.
        alphas: gradient SHAP's path coefficients, ``(batch, samples)`` in [0, 1], row by row
            the values Captum's ``LayerGradientShap`` draws for that sample, else None.
    """

    references: Tensor | None = None
    alphas: Tensor | None = None

    def per_sample(self) -> dict[str, Tensor]:
        """The draws with one row per sample (sliced with the samples when chunking)."""
        return {} if self.alphas is None else {"alphas": self.alphas}


def _no_draws(inputs: Tensor, generator: torch.Generator) -> AttributionDraws:
    return AttributionDraws()


def _reference_set(inputs: Tensor, generator: torch.Generator) -> AttributionDraws:
    order = torch.randperm(inputs.shape[0], generator=generator, device=generator.device)
    chosen = order[: shared.DEEPLIFT_SHAP_REFERENCES].to(inputs.device)
    return AttributionDraws(references=inputs[chosen])


def _path_coefficients(inputs: Tensor, generator: torch.Generator) -> AttributionDraws:
    shape = (inputs.shape[0], shared.GRADIENT_SHAP_SAMPLES)
    alphas = torch.rand(shape, generator=generator, dtype=torch.float64, device=generator.device)
    return AttributionDraws(alphas=alphas.to(inputs.device, inputs.dtype))


@dataclass(frozen=True)
class _Method:
    function: Callable[..., shared.Attributions]
    rows_per_sample: int
    draw: Callable[[Tensor, torch.Generator], AttributionDraws] = _no_draws
    passes_batch_size: bool = False


SHARED_METHODS: dict[str, _Method] = {
    "gradient_x_activation": _Method(shared.gradient_x_activation, 1),
    "gradcam": _Method(shared.gradcam, 1),
    "deeplift": _Method(shared.deeplift, 2),
    "deepliftshap": _Method(
        shared.deepliftshap, 2 * shared.DEEPLIFT_SHAP_REFERENCES, _reference_set
    ),
    "gradientshap": _Method(
        shared.gradientshap, shared.GRADIENT_SHAP_SAMPLES + 1, _path_coefficients
    ),
    "integrated_gradients": _Method(shared.integrated_gradients, shared.INTEGRATED_GRADIENTS_STEPS),
    "conductance": _Method(shared.conductance, shared.CONDUCTANCE_STEPS + 1),
    "internal_influence": _Method(shared.internal_influence, shared.INTERNAL_INFLUENCE_STEPS),
    "feature_ablation": _Method(shared.feature_ablation, 1, passes_batch_size=True),
    "lrp": _Method(shared.lrp, 1),
}

#: Each method's salt of its random stream, by name and fixed for good: a new method takes an unused
#: number, so adding or reordering methods never changes another method's draws.
_SALTS = {
    "gradient_x_activation": 1,
    "gradcam": 2,
    "deeplift": 3,
    "deepliftshap": 4,
    "gradientshap": 5,
    "integrated_gradients": 6,
    "conductance": 7,
    "internal_influence": 8,
    "feature_ablation": 9,
    "lrp": 10,
}


def step_seed(*, task_id: int, step: int, method: str) -> int:
    """The seed of a method's random draws at one step (deterministic, independent of torch's)."""
    return ((task_id * 1_000_003 + step) * 8191 + _SALTS[method]) % (2**62)


def attribution_problem(context: ImportanceContext) -> shared.AttributionProblem:
    """The logits-only model of the step (current head, Stage.TRAIN masks at the step's s)."""
    bound = BoundLogits(
        context.model, task_id=context.task_id, stage=Stage.TRAIN, scale=context.scale
    )
    return shared.AttributionProblem(
        bound=bound,
        taps=activation_taps(context.model),
        sequential=bool(getattr(context.model.backbone, "sequential_taps", False)),
    )


class AttributionImportance:
    """``compute(context)`` of one attribution measure: bam of the attribution of each h_l.

    Args:
        method: one of the keys of :data:`SHARED_METHODS`.
        implementation: ``shared`` (exact shared passes) or ``captum_per_layer``.
        internal_batch_size: the largest number of rows of one pass (``shared`` only).
    """

    def __init__(
        self,
        *,
        method: str,
        implementation: str = "shared",
        internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE,
    ) -> None:
        if method not in SHARED_METHODS:
            raise ValueError(
                f"unknown attribution method {method!r}; valid: {', '.join(SHARED_METHODS)}"
            )
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"unknown implementation {implementation!r}; valid: {', '.join(IMPLEMENTATIONS)}"
            )
        if not isinstance(internal_batch_size, int) or internal_batch_size < 1:
            raise ValueError(
                f"internal_batch_size must be a positive int, got {internal_batch_size!r}"
            )
        self.method = method
        self.implementation = implementation
        self.internal_batch_size = internal_batch_size

    def draws(self, context: ImportanceContext) -> AttributionDraws:
        """The random inputs the method uses at the step of ``context`` (both implementations).

        Drawn from a generator seeded by :func:`step_seed`, never from the global RNG streams.
        """
        inputs = context.inputs.detach()
        generator = torch.Generator(device=inputs.device)
        generator.manual_seed(
            step_seed(task_id=context.task_id, step=context.step, method=self.method)
        )
        return SHARED_METHODS[self.method].draw(inputs, generator)

    def __call__(self, context: ImportanceContext) -> dict[str, Tensor]:
        problem = attribution_problem(context)
        inputs = context.inputs.detach()
        draws = self.draws(context)
        run = {"shared": self._shared, "captum_per_layer": self._per_layer}[self.implementation]
        with attribution_guard(context.model):
            return run(problem, context, inputs, draws)

    def _shared(
        self,
        problem: shared.AttributionProblem,
        context: ImportanceContext,
        inputs: Tensor,
        draws: AttributionDraws,
    ) -> dict[str, Tensor]:
        targets = context.targets
        method = SHARED_METHODS[self.method]
        options = {} if draws.references is None else {"references": draws.references}
        if method.passes_batch_size:
            options["max_rows"] = self.internal_batch_size
        totals: dict[str, Tensor] = {}
        for rows, attributions in shared.chunked(
            method.function,
            problem,
            inputs,
            targets,
            rows_per_sample=method.rows_per_sample,
            internal_batch_size=self.internal_batch_size,
            per_sample=draws.per_sample(),
            **options,
        ):
            for key, value in attributions.items():
                part = batch_abs_mean(value.detach()) * rows
                totals[key] = part if key not in totals else totals[key] + part
        return {key: value / inputs.shape[0] for key, value in totals.items()}

    def _per_layer(
        self,
        problem: shared.AttributionProblem,
        context: ImportanceContext,
        inputs: Tensor,
        draws: AttributionDraws,
    ) -> dict[str, Tensor]:
        activations = context.output.backbone.activations
        attributions = captum_per_layer(
            self.method,
            problem,
            inputs,
            context.targets,
            references=draws.references,
            alphas=draws.alphas,
            unit_shapes={key: tuple(value.shape[1:]) for key, value in activations.items()},
        )
        return {key: batch_abs_mean(value) for key, value in attributions.items()}


def attribution_measure(
    method: str,
    *,
    implementation: str = "shared",
    internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE,
) -> ImportanceMeasure:
    """The :class:`ImportanceMeasure` of attribution ``method`` (u_l = bam(attribution))."""
    compute = AttributionImportance(
        method=method, implementation=implementation, internal_batch_size=internal_batch_size
    )
    return ImportanceMeasure(compute=compute)


GRADIENT_X_ACTIVATION_ABS = attribution_measure("gradient_x_activation")
GRADCAM_ABS = attribution_measure("gradcam")
DEEPLIFT_ABS = attribution_measure("deeplift")
DEEPLIFTSHAP_ABS = attribution_measure("deepliftshap")
GRADIENTSHAP_ABS = attribution_measure("gradientshap")
INTEGRATED_GRADIENTS_ABS = attribution_measure("integrated_gradients")
CONDUCTANCE_ABS = attribution_measure("conductance")
INTERNAL_INFLUENCE_ABS = attribution_measure("internal_influence")
FEATURE_ABLATION_ABS = attribution_measure("feature_ablation")
LRP_ABS = attribution_measure("lrp")
