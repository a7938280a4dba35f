"""hatcl.backbones."""
