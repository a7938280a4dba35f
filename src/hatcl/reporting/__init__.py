"""hatcl.reporting."""
