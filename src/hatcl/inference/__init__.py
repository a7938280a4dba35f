"""Task-agnostic inference: predict the task of an input, then classify within it."""
