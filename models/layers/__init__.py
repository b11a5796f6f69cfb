"""The shared layer module: `SharedConv2d`/`SharedLinear` whose weights come from a layer mode.

`base` holds geometry, bit packing, the mode protocol, the registry and the two layer classes;
each other file is one mode (plain, cpg, supsup, subspace, students, fixed_body, batche, hat), and
`per_task` holds the per-task batch-norms and heads. Importing the package registers every mode.
"""

from unforget.models.layers import (  # noqa: F401  (importing a mode registers it)
    batche,
    cpg,
    fixed_body,
    hat,
    plain,
    students,
    subspace,
    supsup,
    wsn,
)
