"""CPG (compacting, picking and growing) and its family on the same stages: PackNet and the plain
baselines."""
