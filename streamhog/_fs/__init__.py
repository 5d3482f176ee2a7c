"""Private file-system helpers: atomic outputs (write, then rename) and sparse-aware copies."""
