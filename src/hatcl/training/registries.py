"""Registries of optimizers and learning-rate schedulers (torch-free: imported on use)."""

from hatcl.registry import Registry

OPTIMIZERS = Registry("optimizer")
OPTIMIZERS.add("adam", "torch.optim:Adam", summary="Adam (default, lr 1e-3)")
OPTIMIZERS.add("adamw", "torch.optim:AdamW", summary="Adam with decoupled weight decay")
OPTIMIZERS.add("sgd", "torch.optim:SGD", summary="stochastic gradient descent")

LR_SCHEDULERS = Registry("scheduler")
LR_SCHEDULERS.add("step", "torch.optim.lr_scheduler:StepLR", summary="StepLR (step_size, gamma)")
LR_SCHEDULERS.add(
    "exponential", "torch.optim.lr_scheduler:ExponentialLR", summary="ExponentialLR (gamma)"
)
LR_SCHEDULERS.add("cosine", "torch.optim.lr_scheduler:CosineAnnealingLR", summary="T_max epochs")

LOGGERS = Registry("logger")
LOGGERS.add(
    "csv", "lightning.pytorch.loggers:CSVLogger", summary="<run>/logs/csv/version_N/metrics.csv"
)
LOGGERS.add(
    "tensorboard",
    "lightning.pytorch.loggers:TensorBoardLogger",
    summary="<run>/logs/tensorboard/version_N (needs tensorboard)",
)
LOGGERS.add(
    "wandb",
    "lightning.pytorch.loggers:WandbLogger",
    summary="<run>/logs/wandb (needs wandb; WANDB_MODE=offline works without an account)",
)
LOGGERS.add(
    "mlflow",
    "lightning.pytorch.loggers:MLFlowLogger",
    summary="local MLflow store <run>/logs/mlruns (needs mlflow or mlflow-skinny)",
)
