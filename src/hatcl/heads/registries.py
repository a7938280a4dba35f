"""Registry of output heads, one per continual-learning setting (torch-free)."""

from hatcl.registry import Registry

HEADS = Registry("head")
HEADS.add("til", "hatcl.heads.heads:TaskIncrementalHeads", summary="one head per task (TIL)")
HEADS.add("dil", "hatcl.heads.heads:DomainIncrementalHead", summary="one shared head (DIL)")
HEADS.add(
    "cil",
    "hatcl.heads.heads:ClassIncrementalHeads",
    summary="global labels, the logits of all seen classes (CIL; split scenarios)",
)
