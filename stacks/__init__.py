"""The toolkit's stacks: per-region keys, the global table, per-region functions."""
