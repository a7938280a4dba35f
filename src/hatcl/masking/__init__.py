"""hatcl.masking."""
