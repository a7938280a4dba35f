"""Data source loaders: each returns a ``SourceData`` of normalised tensors."""
