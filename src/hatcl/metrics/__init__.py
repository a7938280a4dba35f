"""Continual-learning metrics (accuracy matrix, AA, BWT, forgetting, FWT)."""
