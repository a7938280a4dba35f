"""hatcl.importance."""
