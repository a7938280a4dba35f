"""hatcl.heads."""
