"""hatcl.functional."""
