"""Everything but the architectures and the command-line tools, in layers (lowest first; a module imports
its own layer and lower ones only, and no import cycle exists, lazy imports included; tests/core/test_layering.py
holds the rule as data and enforces it):

core            torch-free basics: exit_codes, cli, atomic (writes), ranks, records, logs and board
data            data/: benchmarks (data/benchmark.py, the leaf; data/registry.py) and task data
settings        settings.py, speed.py: flag groups, checked against the data registry
models          models/ at the repository root
infrastructure  engine, checkpoint, device, distributed, optim
methods         methods/<name>/, one folder per method, which imports no other method's folder (declared
                exceptions in the test's ALLOWED); methods/__init__.py is the registry
entry           entry.py (main_normal.py's stages), warm_start.py and its client warm_client.py, warm_run.py,
                tools/, main_normal.py
"""
