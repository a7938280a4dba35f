"""Device and dtype follow the model, no host sync in a step, a skipped step changes nothing.

CPU stand-ins for GPU mistakes, for every registered algorithm and importance type, each on a
tiny run (2 tasks, 4 steps each, a 16-8 MLP) through the real runner and Lightning:

- float64 (``trainer.precision=64-true``, the model converted by Lightning's precision plugin):
  no op may mix floating dtypes among its tensor arguments (a ``TorchFunctionMode`` records
  them). Lightning's double-precision forward context, which makes float64 the *default* dtype
  during a step, is switched off, so that a tensor allocated without the dtype of what it meets
  (the CPU stand-in for one allocated without its device) shows up as a mix;
- order: at every algorithm hook and at every cross-process reduction, every floating tensor the
  algorithm holds (its buffers, the rule's per-task tensors, the tracker's, the plugin's, the
  teacher's) has the device and dtype of the model (float64, set by the strategy);
- no host sync: during training steps, ``Tensor.item``, ``tolist``, ``__bool__``, ``__float__``,
  ``__int__`` and ``cpu`` raise (the optimizer's own step and joint's grouped forward of a
  mixed-task batch, the one documented exception, are exempt);
- a skipped step: under a grad scaler (16-mixed on CPU) a step whose gradient is made inf
  changes no parameter, buffer, accumulator or statistic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import traceback
from collections.abc import Iterator

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import DoublePrecision, MixedPrecision
from torch import nn
from torch.overrides import TorchFunctionMode

import hatcl.training.module as module_lib
import hatcl.training.step as step_lib
import hatcl.training.task_loop as task_loop
from hatcl.algorithms.registries import ALGORITHMS
from hatcl.cli_run import compose_config, run_from_config
from hatcl.importance.registry import IMPORTANCE_TYPES

TINY = [
    "data.num_tasks=2",
    "data.train_subset=72",
    "data.test_subset=16",
    "data.val_fraction=0.1",
    "trainer.batch_size=16",
    "trainer.eval_batch_size=64",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
    "trainer.log_every_n_steps=1000",  # no logging step: every step must be sync-free
    "backbone.hidden_dims=[16,8]",
    "algorithm.fisher_samples=32",
]

CASES = [pytest.param((f"algorithm={name}",), id=name) for name in ALGORITHMS.names()] + [
    pytest.param(("algorithm=fgadahat", f"algorithm.importance_type={kind}"), id=kind)
    for kind in IMPORTANCE_TYPES.names()
]

# ops whose point is to take another dtype (conversions, copies, Module.to's bookkeeping)
_CONVERSIONS = {
    "to",
    "type",
    "type_as",
    "copy_",
    "set_",
    "__set__",
    "__get__",
    "_has_compatible_shallow_copy_type",
}
_SYNCS = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu")


def _overrides(case: tuple[str, ...], tmp_path) -> list[str]:
    extra = list(TINY)
    if case[0] != "algorithm=ewc":
        extra.remove("algorithm.fisher_samples=32")
    return [*case, *extra, f"output_dir={tmp_path / 'run'}"]


# -- (a) no op mixes floating dtypes -----------------------------------------------------------


def _floating_dtypes(values, found: set) -> None:
    for value in values:
        if isinstance(value, torch.Tensor):
            if value.is_floating_point():
                found.add(value.dtype)
        elif isinstance(value, (list, tuple)):
            _floating_dtypes(value, found)


class DtypeMixRecorder(TorchFunctionMode):
    """Records every op whose tensor arguments have more than one floating dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.mixes: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        # torch's fused optimizer kernels keep their step counters in float32 by design
        if name not in _CONVERSIONS and not name.startswith("_fused_"):
            found: set = set()
            _floating_dtypes([*args, *kwargs.values()], found)
            if len(found) > 1 and len(self.mixes) < 5:
                where = "".join(traceback.format_stack(limit=8)[:-1])
                self.mixes.append(f"{func} mixes {sorted(map(str, found))}\n{where}")
        return func(*args, **kwargs)


# -- (b) what the algorithm holds has the model's device and dtype -----------------------------


def held_tensors(root: object) -> Iterator[tuple[str, torch.Tensor]]:
    """Every floating tensor reachable from ``root`` through hatcl objects and containers."""
    seen: set[int] = set()
    stack: list[tuple[str, object]] = [("algorithm", root)]
    while stack:
        name, value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            if value.is_floating_point():
                yield name, value
        else:
            stack.extend(_children(name, value))


def _children(name: str, value: object) -> list[tuple[str, object]]:
    if isinstance(value, nn.Module):
        tensors = [*value.named_parameters(), *value.named_buffers()]
        attributes = [(k, v) for k, v in vars(value).items() if k not in _MODULE_INTERNALS]
        return [(f"{name}.{k}", v) for k, v in [*tensors, *attributes]]
    if isinstance(value, dict):
        return [(f"{name}[{k!r}]", v) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f"{name}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value)]
    if type(value).__module__.startswith("hatcl.") and hasattr(value, "__dict__"):
        return [(f"{name}.{k}", v) for k, v in vars(value).items()]
    return []


_MODULE_INTERNALS = {
    "_parameters",
    "_buffers",
    "_modules",
    "_non_persistent_buffers_set",
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_is_full_backward_hook",
}

_ALGORITHM_HOOKS = (
    "on_task_start",
    "loss_terms",
    "adjust_gradients",
    "compensate_gradients",
    "after_optimizer_step",
    "distributed_sums",
    "on_task_end",
)


class PlacementRecorder(L.Callback):
    """At every algorithm hook, reduction and Lightning training hook: model vs held tensors."""

    def __init__(self) -> None:
        self.points: list[str] = []
        self.disagreements: list[str] = []
        self._module = None

    def record(self, where: str, extra: list[torch.Tensor] = ()) -> None:
        model = self._module.model
        like = next(p for p in model.parameters() if p.is_floating_point())
        self.points.append(f"{where}:{like.dtype}")
        held = [*held_tensors(self._module.algorithm), *(("sum", t) for t in extra)]
        for name, tensor in held:
            if tensor.is_floating_point() and (tensor.device, tensor.dtype) != (
                like.device,
                like.dtype,
            ):
                self.disagreements.append(
                    f"{where}: {name} is {tensor.device}/{tensor.dtype}, "
                    f"the model {like.device}/{like.dtype}"
                )

    def on_fit_start(self, trainer, pl_module) -> None:
        if self._module is None:
            self._module = pl_module
            algorithm = pl_module.algorithm
            for hook in _ALGORITHM_HOOKS:
                original = getattr(algorithm, hook)
                setattr(algorithm, hook, self._recording(hook, original))

    def _recording(self, hook: str, original):
        def wrapper(*args, **kwargs):
            self.record(f"{hook}:before")
            result = original(*args, **kwargs)
            self.record(f"{hook}:after")
            return result

        return wrapper

    def on_train_start(self, trainer, pl_module) -> None:
        self.record("on_train_start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record("on_train_batch_end")


# -- (c) no host sync in a step ----------------------------------------------------------------


class SyncGuard:
    """While ``active``, the patched Tensor methods record the call (and raise)."""

    def __init__(self) -> None:
        self.active = False
        self.calls: list[str] = []

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        active, self.active = self.active, False
        try:
            yield
        finally:
            self.active = active

    def patch(self, monkeypatch) -> None:
        for name in _SYNCS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._guarded(name, original))

    def _guarded(self, name: str, original):
        guard = self

        def method(tensor, *args, **kwargs):
            if guard.active:
                guard.active = False  # the report itself may read tensors
                stack = "".join(traceback.format_stack(limit=10)[:-1])
                guard.calls.append(f"Tensor.{name} in a training step\n{stack}")
                raise AssertionError(f"host sync: Tensor.{name} in a training step")
            return original(tensor, *args, **kwargs)

        return method


# -- one instrumented float64 run per case ------------------------------------------------------


@dataclasses.dataclass
class Instrumented:
    mixes: list[str]
    placements: PlacementRecorder
    syncs: list[str]
    error: BaseException | None


def _instrumented_run(case, tmp_path, monkeypatch) -> Instrumented:
    placements, guard, mode = PlacementRecorder(), SyncGuard(), DtypeMixRecorder()
    guard.patch(monkeypatch)
    monkeypatch.setattr(DoublePrecision, "forward_context", contextlib.nullcontext)
    make_trainer = task_loop.make_trainer

    def trainer_with_recorder(*args, callbacks=(), **kwargs):
        return make_trainer(*args, callbacks=[*callbacks, placements], **kwargs)

    monkeypatch.setattr(task_loop, "make_trainer", trainer_with_recorder)
    training_step = module_lib.ContinualModule.training_step

    def guarded_step(self, batch, batch_idx):
        guard.active = True
        try:
            return training_step(self, batch, batch_idx)
        finally:
            guard.active = False

    monkeypatch.setattr(module_lib.ContinualModule, "training_step", guarded_step)
    optimizer_step = L.pytorch.core.optimizer.LightningOptimizer.step

    def unguarded_optimizer_step(self, *args, **kwargs):  # torch's optimizer, not hatcl's step
        with guard.suspended():
            return optimizer_step(self, *args, **kwargs)

    monkeypatch.setattr(
        L.pytorch.core.optimizer.LightningOptimizer, "step", unguarded_optimizer_step
    )
    grouped_forward = step_lib.grouped_forward

    def unguarded_grouped_forward(*args, **kwargs):  # the documented exception (joint)
        with guard.suspended():
            return grouped_forward(*args, **kwargs)

    monkeypatch.setattr(step_lib, "grouped_forward", unguarded_grouped_forward)
    for name in ("all_reduce_sum", "broadcast_buffers"):
        original = getattr(module_lib, name)

        def reduction(arg, _original=original, _name=name):
            tensors = list(arg) if isinstance(arg, list) else []
            placements.record(f"reduction:{_name}", tensors)
            return _original(arg)

        monkeypatch.setattr(module_lib, name, reduction)
    error = None
    cfg = compose_config([*_overrides(case, tmp_path), "trainer.precision=64-true"])
    try:
        with mode:
            run_from_config(cfg)
    except AssertionError as raised:
        error = raised
    return Instrumented(mode.mixes, placements, guard.calls, error)


@pytest.mark.parametrize("case", CASES)
def test_float64_run_is_consistent_and_sync_free(case, tmp_path, monkeypatch):
    run = _instrumented_run(case, tmp_path, monkeypatch)
    # (c) no host sync during training steps
    assert not run.syncs, run.syncs[0]
    assert run.error is None, run.error
    # (a) no op mixed floating dtypes
    assert not run.mixes, run.mixes[0]
    # (b) every hook and reduction saw the algorithm's tensors where the model is, in float64
    points = run.placements.points
    for hook in ("on_task_start:after", "after_optimizer_step:after", "on_task_end:after"):
        assert f"{hook}:torch.float64" in points, points[:10]
    assert "reduction:all_reduce_sum:torch.float64" in points
    assert all(point.endswith("torch.float64") for point in points), sorted(set(points))
    assert not run.placements.disagreements, run.placements.disagreements[:5]


def test_the_recorders_catch_what_they_look_for(monkeypatch):
    """The instruments themselves can fail: a mix, a misplaced buffer and a sync are caught."""
    with DtypeMixRecorder() as mode:
        torch.ones(2, dtype=torch.float64) * torch.ones(2)
    assert len(mode.mixes) == 1
    holder = nn.Module()
    holder.register_buffer("kept", torch.zeros(2))
    holder.rule = type("Rule", (), {})()
    assert [name for name, _ in held_tensors(holder)] == ["algorithm.kept"]
    guard = SyncGuard()
    guard.patch(monkeypatch)
    guard.active = True
    with pytest.raises(AssertionError, match="host sync: Tensor.item"):
        torch.ones(()).item()
    assert guard.calls


# -- (d) a step the grad scaler skips changes nothing --------------------------------------------


class InfGradientAtStep(L.Callback):
    """At one training step of task 2: snapshot the state, make a gradient inf, compare after."""

    def __init__(self, *, step_in_task: int = 1) -> None:
        self.step_in_task = step_in_task
        self.task = 0
        self.before: dict[str, torch.Tensor] | None = None
        self.changed: list[str] | None = None
        self.skipped_steps = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        self.task += 1

    def _armed(self, batch_idx: int) -> bool:
        return self.task == 2 and batch_idx == self.step_in_task

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._armed(batch_idx):
            self.before = _state(pl_module)

    def on_after_backward(self, trainer, pl_module) -> None:
        if self.before is not None and self.changed is None:
            parameter = next(p for p in pl_module.model.parameters() if p.grad is not None)
            parameter.grad.view(-1)[0] = float("inf")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._armed(batch_idx):
            after = _state(pl_module)
            self.changed = [key for key in self.before if not _same(self.before[key], after[key])]
            self.skipped_steps = int(trainer.precision_plugin.scaler.get_scale() < 2.0**16)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    return torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True)


def _state(pl_module) -> dict[str, torch.Tensor]:
    state = {f"model.{k}": v.detach().clone() for k, v in pl_module.model.state_dict().items()}
    state.update(
        (f"algorithm.{k}", v.detach().clone()) for k, v in pl_module.algorithm.state_dict().items()
    )
    state.update(
        (name, tensor.detach().clone())
        for name, tensor in held_tensors(pl_module.algorithm)
        if "_step_rates" not in name  # the last step's rates: reporting, not state
    )
    # a random generator's state: a skipped step consumes its draws, as it consumes its batch
    return {k: v for k, v in state.items() if not k.endswith("generator.state")}


@pytest.mark.parametrize("case", CASES)
def test_a_step_skipped_by_the_grad_scaler_changes_no_state(case, tmp_path, monkeypatch):
    injector = InfGradientAtStep()
    make_trainer = task_loop.make_trainer

    def fp16_trainer(config, *, callbacks=(), **kwargs):
        trainer = make_trainer(config, callbacks=[*callbacks, injector], **kwargs)
        plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
        trainer.strategy.precision_plugin = plugin
        return trainer

    monkeypatch.setattr(task_loop, "make_trainer", fp16_trainer)
    run_from_config(compose_config(_overrides(case, tmp_path)))
    assert injector.before is not None, "the step with an inf gradient never ran"
    assert injector.skipped_steps == 1, "the grad scaler did not skip the step"
    assert injector.changed == [], injector.changed


# -- precision is checked up front; heads follow the model -------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["trainer.precision=16-true"], "trainer.precision='16-true' is not supported; valid:"),
        (["trainer.precision=bf16-true"], "valid: 32-true, 64-true, 16-mixed, bf16-mixed"),
        (["trainer.precision=16-mixed"], "16-mixed.*not supported with trainer.accelerator=cpu"),
    ],
)
def test_unsupported_precision_is_refused_before_any_work(tmp_path, overrides, expected):
    run_dir = tmp_path / "run"
    cfg = compose_config([*overrides, "trainer.accelerator=cpu", f"output_dir={run_dir}"])
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
        run_from_config(cfg)
    assert not run_dir.exists()


def test_new_heads_and_task_norms_take_the_model_dtype():
    from hatcl.backbones.mlp import MLPBackbone
    from hatcl.backbones.model import ContinualModel
    from hatcl.heads.heads import TaskIncrementalHeads

    backbone = MLPBackbone(input_shape=(4,), hidden_dims=(3,), batch_norm="independent")
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=3))
    model.setup_task(task_id=1, num_classes=2)
    model.double()
    model.setup_task(task_id=2, num_classes=2)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert {b.dtype for b in model.buffers() if b.is_floating_point()} == {torch.float64}
