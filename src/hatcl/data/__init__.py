"""hatcl.data."""
