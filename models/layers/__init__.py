"""The shared layer module: `SharedConv2d`/`SharedLinear` whose weights come from a layer mode.

`base` holds geometry, bit packing, the mode protocol, the registry and the two layer classes;
each other file is one mode (plain, cpg, supsup, subspace, students), and `per_task` holds the
per-task batch-norms and heads. Importing the package registers every mode.
"""

from models.layers import cpg, plain, students, subspace, supsup  # noqa: F401  (importing a mode registers it)
