"""hatcl.metrics."""
