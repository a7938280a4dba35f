"""Assemble an experiment (data, model, algorithm, loop) from a typed configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hatcl.algorithms.base import Algorithm
from hatcl.algorithms.registries import ALGORITHMS
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.registries import BACKBONES
from hatcl.build import instantiate
from hatcl.config import ComponentConfig, OptimizerConfig, TrainerConfig, dataclass_from_mapping
from hatcl.data.base import ContinualData, DataConfig
from hatcl.heads.registries import HEADS
from hatcl.inference.config import CilConfig
from hatcl.validation import check_int


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a run needs, typed; built by :meth:`from_mapping` from the Hydra config."""

    algorithm: ComponentConfig
    backbone: ComponentConfig
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    head: str = "til"
    seed: int = 1
    reference_run: str | None = None
    cil: CilConfig = field(default_factory=CilConfig)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ExperimentConfig:
        """Validate and convert a (Hydra) mapping; extra top-level keys are ignored."""
        seed = check_int(mapping.get("seed", 1), parameter="seed", low=0)
        head = mapping.get("head", "til")
        HEADS.validate(head, parameter="head")
        data = _data_config(mapping.get("data") or {})
        cil = dataclass_from_mapping(CilConfig, mapping.get("cil"), section="cil")
        _check_head(head, data, cil)
        reference_run = mapping.get("reference_run")
        if reference_run is not None and not isinstance(reference_run, str):
            raise TypeError(
                f"reference_run must be a run folder, 'auto' or null, got {reference_run!r}"
            )
        backbone = ComponentConfig.from_mapping(mapping["backbone"], section="backbone")
        if backbone.name == "custom":
            from hatcl.wrap.custom import check_custom_backbone

            check_custom_backbone(backbone.options)
        return cls(
            algorithm=ComponentConfig.from_mapping(mapping["algorithm"], section="algorithm"),
            backbone=backbone,
            data=data,
            optimizer=dataclass_from_mapping(
                OptimizerConfig, mapping.get("optimizer"), section="optimizer"
            ),
            trainer=dataclass_from_mapping(
                TrainerConfig, mapping.get("trainer"), section="trainer"
            ),
            head=head,
            seed=seed,
            reference_run=reference_run,
            cil=cil,
        )


#: The scenario whose tasks have disjoint classes, the only one ``head=cil`` accepts.
CLASS_INCREMENTAL_SCENARIO = "split"


def _check_head(head: str, data: DataConfig, cil: CilConfig) -> None:
    """``head=cil`` needs disjoint classes (a split); a calibration needs validation samples."""
    if cil.calibration != "none" and head != "til" and not data.val_fraction:
        raise ValueError(
            f"cil.calibration={cil.calibration} is fitted on validation samples, but "
            "data.val_fraction=0: set data.val_fraction > 0 or cil.calibration=none"
        )
    if head == "cil" and data.scenario != CLASS_INCREMENTAL_SCENARIO:
        raise ValueError(
            f"head 'cil' (class-incremental) needs tasks with disjoint classes, i.e. "
            f"data.scenario={CLASS_INCREMENTAL_SCENARIO}; scenario {data.scenario!r} gives every "
            "task the same classes: use head=dil for it"
        )


def _data_config(mapping: Mapping[str, Any]) -> DataConfig:
    """The data section; ``source: custom`` is a user's task data given by import path."""
    if mapping.get("source") == "custom":
        from hatcl.data.sources.custom import CustomDataConfig

        return CustomDataConfig.from_mapping(mapping)
    return DataConfig.from_mapping(mapping)


def build_algorithm(config: ComponentConfig) -> Algorithm:
    """Instantiate the configured algorithm."""
    return instantiate(ALGORITHMS, config.name, config.options, section="algorithm")


def build_model(
    config: ExperimentConfig, *, data: ContinualData, algorithm: Algorithm
) -> ContinualModel:
    """Backbone (masked when the algorithm uses masks) followed by the configured heads."""
    reserved = {"input_shape", "masked"} & set(config.backbone.options)
    if reserved:
        raise ValueError(f"backbone options {sorted(reserved)} are set by hatcl, not by the config")
    backbone = instantiate(
        BACKBONES,
        config.backbone.name,
        {
            **config.backbone.options,
            "input_shape": data.input_shape,
            "masked": algorithm.uses_masks,
        },
        section="backbone",
    )
    heads = HEADS.get(config.head)(
        input_dim=backbone.output_dim, per_task_network=algorithm.per_task_network
    )
    model = ContinualModel(backbone=backbone, heads=heads)
    algorithm.configure_model(model=model)
    return model


def build_module(config: ExperimentConfig, *, model: ContinualModel, algorithm: Algorithm):
    """The Lightning module running the one training loop (Lightning is imported here)."""
    from hatcl.inference.evaluator import TaskAgnosticEvaluator
    from hatcl.training.module import ContinualModule

    evaluator = None
    if not model.heads.task_id_at_test:
        evaluator = TaskAgnosticEvaluator.from_config(config.cil, seed=config.seed)
    return ContinualModule(
        model=model,
        algorithm=algorithm,
        optimizer=config.optimizer,
        log_every_n_steps=config.trainer.log_every_n_steps,
        evaluator=evaluator,
    )
