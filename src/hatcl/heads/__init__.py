"""Output heads (TIL: one per task; DIL: one shared)."""
