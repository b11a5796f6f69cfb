"""The layering rule, written as data (LAYERS, ALLOWED), and the tests that hold the code to it.

Layers, lowest first. A module may import modules of its own layer or of lower ones, never of a higher one:

  core            torch-free basics: exit codes, cli, atomic writes, ranks, records, train.log and its board
                  (which imports TensorBoard only when it writes a scalar), and what the methods' reports share:
                  the run files' readers, the metrics and the plots
  data            utils/data/: benchmarks and task data; utils/data/benchmark.py is its leaf
  settings        utils/settings.py and utils/speed.py: the flag groups, checked against the data registry
  models          models/: architectures built from the shared layers (models/layers/)
  infrastructure  the engine, checkpoints, devices, data parallelism, optimizers
  methods         utils/methods/<name>/: a method imports its own folder and lower layers; the registry
                  (utils/methods/__init__.py) and any module directly under utils/methods/ are shared by every
                  method and import no method folder; one method imports another only where ALLOWED says why
  entry           utils/entry.py (main_normal.py's stages), utils/warm_start.py, utils/warm_run.py, tools/ and
                  the script main_normal.py itself

What counts: every `import` and `from ... import` in a module, those inside functions included (a lazy import
runs when its function does, so it can close a cycle at runtime as surely as a top-level one); only imports
under `if TYPE_CHECKING:` are left out, as they never run. An import names the nearest module of this
repository it reaches (`from models import build_network` is `models`, `from utils.methods.supsup import
transfer` is that submodule); a package's __init__ being run by an import of its submodule is not counted
(models/__init__.py re-exports its submodules, the usual package shape). No cycles, lazy imports included.

Separately, the modules that promise to import no torch are imported with torch made unimportable.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("core", "data", "settings", "models", "infrastructure", "methods", "entry")
MODULES = {
    # module or package (its submodules follow it unless named themselves) -> layer
    "utils": "core", "utils.exit_codes": "core", "utils.cli": "core", "utils.atomic": "core", "utils.ranks": "core",
    "utils.records": "core", "utils.board": "core", "utils.logs": "core",
    "utils.data": "data",
    "utils.settings": "settings", "utils.speed": "settings",
    "models": "models",
    "utils.engine": "infrastructure", "utils.checkpoint": "infrastructure", "utils.device": "infrastructure",
    "utils.distributed": "infrastructure", "utils.optim": "infrastructure",
    "utils.methods": "methods",
    "utils.entry": "entry", "utils.warm_start": "entry", "utils.warm_client": "entry", "utils.warm_run": "entry",
    "tools": "entry",
    "main_normal": "entry", "api": "entry", "ready": "entry",  # unforget/api.py and its torch half unforget/ready.py
}
ALLOWED = {
    # (importer, imported) across method folders -> why
    ("utils.methods.piggyback.stages", "utils.methods.cpg.stages"):
        "Piggyback reuses CPG's Stage, load_stage, train_new_task and inference",
    ("utils.methods.gg_baseline.settings", "utils.methods.supsup.settings"):
        "the GG baselines are SupSup's comparisons: they run on SupSup's architectures (ARCHITECTURES)",
}
TORCH_FREE = ("tools.choose_pruning_ratio", "tools.choose_retrain", "utils.settings", "utils.data.registry",
              "tools.list_tasks", "utils.methods", "utils.entry", "unforget.api")
"""Imported by the drivers outside the warm start, or before a stage's torch: each must import no torch."""


def module_files() -> dict[str, Path]:
    """Every module the rule covers: the .py files under utils/, models/, tools/, main_normal.py, and the modules
    of unforget/ itself (the Python API), named as imports of them read once `unforget.` is taken off."""
    files = [path for folder in ("utils", "models", "tools") for path in (REPO / folder).rglob("*.py")]
    modules = {}
    for path in [*files, REPO / "main_normal.py"]:
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in (REPO / "unforget").glob("*.py"):
        if path.name != "__init__.py":
            modules[path.stem] = path
    return modules


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import nodes under `if TYPE_CHECKING:`."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(child for part in node.body for child in ast.walk(part))
    return skipped


PACKAGE = "unforget."
"""The one import name of the library: utils/, models/ and tools/ are imported as unforget.utils and so on."""


def imported_names(tree: ast.Module, package: str) -> set[str]:
    """Every module name `tree` imports, as written (relative imports resolved against `package`)."""
    skipped = _type_checking_only(tree)
    names = set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of this repository's modules (see the module docstring for what counts)."""

    def nearest(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names = {name.removeprefix(PACKAGE) for name in imported_names(tree, package) if name.startswith(PACKAGE)}
        graph[module] = {target for target in map(nearest, names) if target and target != module}
    return graph


def layer_of(module: str) -> str:
    name = module
    while name not in MODULES:
        if "." not in name:
            raise KeyError(f"{module} is in no layer: add it (or its package) to MODULES in "
                           "tests/core/test_layering.py")
        name = name.rpartition(".")[0]
    return MODULES[name]


def method_of(module: str, modules: dict[str, Path]) -> str:
    """The method folder a methods-layer module belongs to, or "shared" (the registry, utils/methods/*.py)."""
    parts = module.split(".")
    if len(parts) < 3 or modules[".".join(parts[:3])].name != "__init__.py":
        return "shared"
    return parts[2]


def violations(graph: dict[str, set[str]], modules: dict[str, Path]) -> list[str]:
    found = []
    for importer, targets in sorted(graph.items()):
        for imported in sorted(targets):
            low, high = LAYERS.index(layer_of(imported)), LAYERS.index(layer_of(importer))
            if low > high:
                found.append(f"{importer} ({layer_of(importer)}) imports {imported} ({layer_of(imported)}), "
                             "a higher layer")
            elif low == high == LAYERS.index("methods") and (importer, imported) not in ALLOWED:
                ours, theirs = method_of(importer, modules), method_of(imported, modules)
                if theirs not in (ours, "shared"):
                    found.append(f"{importer} imports {imported}, another method's module: share it through a "
                                 "lower layer or utils/methods/, or declare it in ALLOWED with the reason")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return imports(module_files())


def test_every_module_is_in_a_layer():
    for module in module_files():
        assert layer_of(module) in LAYERS


def test_no_import_goes_against_the_layering(graph):
    assert violations(graph, module_files()) == []


def test_every_allowed_cross_method_import_is_still_made(graph):
    """A declared exception that the code no longer needs goes, so the list says what is shared today."""
    assert [pair for pair in ALLOWED if pair[1] not in graph.get(pair[0], ())] == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_the_rule_catches_a_forbidden_import_and_a_cycle():
    """The checks themselves work: a data module importing a model, and two modules importing each other."""
    modules = {"utils.data.tasks": Path("tasks.py"), "models": Path("__init__.py"), "utils.methods": Path("x.py")}
    assert violations({"utils.data.tasks": {"models"}}, modules) == [
        "utils.data.tasks (data) imports models (models), a higher layer"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_torch_free_modules_import_no_torch():
    """With torch unimportable, the choosers, the settings (every method's flag group), the data registry and
    the task lister still import, and the entry still builds every method's parser."""
    code = ("import sys, importlib; sys.modules['torch'] = None\n"
            f"for name in {TORCH_FREE!r}: importlib.import_module(name)\n"
            "from unforget.utils.entry import build_parser\nfrom unforget.utils.methods import METHODS\n"
            "for method in METHODS: build_parser(method)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_library_and_its_tests_import_it_by_its_one_name():
    """`import utils.x` would load a second copy of the module beside unforget.utils.x (and clash with a user's
    own `utils` once installed): every import of the repository's code goes through `unforget`."""
    files = [*module_files().values(), *(REPO / "tests").rglob("*.py"), *(REPO / "docs").rglob("*.py")]
    bare = sorted(f"{path.relative_to(REPO)} imports {name}" for path in files
                  for name in imported_names(ast.parse(path.read_text()), "")
                  if name.split(".")[0] in ("utils", "models", "tools"))
    assert bare == []


def test_no_test_module_imports_another():
    """Tests share code through tests/helpers/ and fixtures through conftest.py, never by importing a test
    module (or conftest), which would run one file's module-level setup inside another's."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(REPO)} imports {name}" for name in names
                          if name.startswith("tests.") and not name.startswith("tests.helpers")]
    assert offenders == []
