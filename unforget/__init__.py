"""Unforgetting continual learning: CPG, PackNet, Piggyback, SupSup, subspaces and Expand-and-Cluster on one
shared layer module.

The library lives under one name so that installing it puts no generic `utils`, `models` or `tools` package on a
user's path: `unforget.utils`, `unforget.models` and `unforget.tools` are the repository's `utils/`, `models/` and
`tools/` folders (links in a checkout, copies in a wheel). `unforget.api` is the small Python road.
"""
