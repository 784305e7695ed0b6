"""Imports run one way: ir <- passes <- frontends / backends <- cli (checked on the source).

Each module's natopt imports (anywhere in the file, lazy ones included) are read with ``ast``;
nothing is executed. ``natopt.errors`` is importable from every layer; a top-level package
not named here counts as application code (the cli's layer), so the lower layers may not
depend on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import natopt

PACKAGE_ROOT = Path(natopt.__file__).parent
LAYERS = {
    "natopt.errors": 0,
    "natopt.ir": 0,
    "natopt.passes": 1,
    "natopt.frontends": 2,
    "natopt.backends": 2,
}
APPLICATION = 3


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return APPLICATION


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
