"""hatcl.gates."""
