"""Benchmarks and their task data. The package import is torch-free (see `registry`); the tensors
live in `utils.data.tasks`."""
