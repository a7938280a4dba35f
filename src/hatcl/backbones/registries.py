"""Registries of backbones and batch-norm modes (torch-free: entries are imported on use)."""

from hatcl.registry import Registry

BACKBONES = Registry("backbone")
BACKBONES.add("mlp", "hatcl.backbones.mlp:MLPBackbone", summary="fully connected, HAT-masked")
BACKBONES.add(
    "cnn",
    "hatcl.backbones.cnn:CNNBackbone",
    summary="AlexNet-style (HAT paper): 3 conv + 2 fc, masks per channel",
)
BACKBONES.add(
    "resnet18",
    "hatcl.backbones.resnet:ResNetBackbone",
    summary="ResNet-18, masks per channel, shortcut convs masked and protected",
)
BACKBONES.add(
    "custom",
    "hatcl.wrap.custom:custom_backbone",
    summary="your own network by import path (backbone.target=pkg.module:factory), wrapped",
)

BATCH_NORM_MODES = Registry("batch_norm")
BATCH_NORM_MODES.add("none", "hatcl.backbones.norms:NoNorm", summary="no batch norm")
BATCH_NORM_MODES.add("shared", "hatcl.backbones.norms:SharedNorm", summary="one for all tasks")
BATCH_NORM_MODES.add(
    "independent", "hatcl.backbones.norms:PerTaskNorm", summary="one per task (HAT-safe)"
)
