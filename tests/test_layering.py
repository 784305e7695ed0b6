"""Imports run one way: ir <- passes <- frontends / backends <- cli (checked on the source).

Each module's natopt imports (anywhere in the file, lazy ones included) are read with ``ast``;
nothing is executed. ``natopt.errors`` is importable from every layer; a top-level package
not named here counts as application code (the cli's layer), so the lower layers may not
depend on it. Inside ``passes`` imports run one way too: the core passes <- calibration <-
width <- transitions <- nat (``PASS_LAYERS``). ``bench`` measures graphs and never applies
plans: it imports neither the pipeline nor the plan layers. And every module imports on its
own, in a fresh interpreter (no import cycle that only some import orders survive).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import natopt

PACKAGE_ROOT = Path(natopt.__file__).parent
LAYERS = {
    "natopt.errors": 0,
    "natopt._registry": 0,
    "natopt.ir": 0,
    "natopt.passes": 1,
    "natopt.frontends": 2,
    "natopt.backends": 2,
}
APPLICATION = 3
PASS_LAYERS = {
    "natopt.passes.calibration": 1,
    "natopt.passes.width": 2,
    "natopt.passes.transitions": 3,
    "natopt.passes.nat": 4,
}
BENCH_MAY_NOT_IMPORT = ("natopt.pipeline", "natopt.passes.transitions", "natopt.passes.nat")


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer(module: str) -> int:
    for prefix, rank in LAYERS.items():
        if within(module, prefix):
            return rank
    return APPLICATION


def pass_layer(module: str) -> int:
    """A ``natopt.passes`` module's rank inside ``passes`` (0: the core passes)."""
    for prefix, rank in PASS_LAYERS.items():
        if within(module, prefix):
            return rank
    return 0


def natopt_imports(path: Path, root: Path = PACKAGE_ROOT) -> set[str]:
    """Absolute names of the natopt modules ``path`` (a file under ``root``) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return {name for name in found if name == "natopt" or name.startswith("natopt.")}


SOURCES = sorted(PACKAGE_ROOT.rglob("*.py"))
PASS_SOURCES = [p for p in SOURCES if within(module_name(p), "natopt.passes")]
BENCH_SOURCES = [p for p in SOURCES if within(module_name(p), "natopt.bench")]


def test_the_package_sources_are_found():
    names = {module_name(p) for p in SOURCES}
    assert {"natopt.ir.graph", "natopt.passes.base", "natopt.cli.main"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_point_down_the_layers(path):
    here = module_name(path)
    upward = sorted(m for m in natopt_imports(path) if layer(m) > layer(here) and m != "natopt")
    assert not upward, f"{here} (layer {layer(here)}) imports higher layers: {upward}"


def test_the_checker_sees_relative_and_lazy_imports(tmp_path):
    fake_root = tmp_path / "natopt"
    (fake_root / "ir").mkdir(parents=True)
    source = fake_root / "ir" / "bad.py"
    source.write_text(
        "from . import graph\n"
        "def f():\n"
        "    from ..passes import base\n"
        "    import natopt.cli.main\n",
        encoding="utf-8",
    )
    imports = natopt_imports(source, fake_root)
    assert imports == {"natopt.ir", "natopt.passes", "natopt.cli.main"}
    assert [layer(m) > layer("natopt.ir.bad") for m in sorted(imports)] == [True, False, True]


@pytest.mark.parametrize("path", PASS_SOURCES, ids=module_name)
def test_imports_inside_passes_point_down(path):
    here = module_name(path)
    passes = (m for m in natopt_imports(path) if within(m, "natopt.passes"))
    upward = sorted(m for m in passes if pass_layer(m) > pass_layer(here))
    assert not upward, f"{here} (passes layer {pass_layer(here)}) imports higher: {upward}"


def test_the_pass_layers_are_ordered_as_documented():
    order = sorted(PASS_LAYERS, key=PASS_LAYERS.__getitem__)
    assert order == [
        "natopt.passes.calibration",
        "natopt.passes.width",
        "natopt.passes.transitions",
        "natopt.passes.nat",
    ]
    assert pass_layer("natopt.passes.units") == pass_layer("natopt.passes") == 0
    assert pass_layer("natopt.passes.width.prune") < pass_layer("natopt.passes.transitions.mask")


@pytest.mark.parametrize("path", BENCH_SOURCES, ids=module_name)
def test_bench_neither_imports_the_pipeline_nor_applies_plans(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    banned = sorted(
        m for m in natopt_imports(path) if any(within(m, b) for b in BENCH_MAY_NOT_IMPORT)
    )
    assert not banned, f"{module_name(path)} imports {banned}"
    assert "apply_plan" not in names, f"{module_name(path)} applies plans"


IMPORT_EACH = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "natopt" or m.startswith("natopt.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
"""


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """One interpreter imports each module in turn, natopt's modules dropped in between (the
    third-party ones stay loaded: what is checked is natopt's own import order)."""
    names = [module_name(p) for p in SOURCES]
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, *names],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE_ROOT.parent,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"modules that do not import on their own:\n{run.stdout}"
