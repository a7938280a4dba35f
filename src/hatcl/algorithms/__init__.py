"""hatcl.algorithms."""
