"""hatcl.training."""
