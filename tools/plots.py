"""The report's plots, for the tools: they live in utils/plots.py, below the methods whose reports draw them.
This name is that very module (one module object under both names), so patching `tools.plots` patches what
every report draws with."""

from __future__ import annotations

import sys

from utils import plots

sys.modules[__name__] = plots
