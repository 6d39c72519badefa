"""The sans-IO core stays sans-IO (STYLE.md habit 12).

Two checks, each exactly as strong as what is true:

* dynamically, in a fresh interpreter per module: importing ``p2pcomm.core`` or any
  module under it leaves ``trio``, ``sqlite3``, ``zeroconf`` and ``socket`` out of
  ``sys.modules``. (``time``, ``random``, ``os`` ... are pulled in by the standard library
  itself, e.g. through ``hashlib`` or ``base64``, so importing them cannot be tested
  this way);
* statically, with ``ast``: no module under ``p2pcomm/core`` imports ``time``, ``random``,
  ``os``, ``secrets``, ``socket``, ``trio``, ``sqlite3``, ``zeroconf``, ``threading`` or
  ``asyncio`` (at module level or inside a function, directly or via ``importlib``).

Modules are discovered with ``pkgutil``, so new core modules are covered automatically.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import p2pcomm.core

CORE_DIR = Path(p2pcomm.core.__file__).parent
CORE_MODULES = [
    "p2pcomm.core",
    *sorted(f"p2pcomm.core.{m.name}" for m in pkgutil.iter_modules([str(CORE_DIR)])),
]
CORE_FILES = sorted(CORE_DIR.rglob("*.py"))

NOT_LOADED = {"trio", "sqlite3", "_sqlite3", "zeroconf", "socket", "_socket"}
NOT_IMPORTED = {
    "time",
    "random",
    "os",
    "secrets",
    "socket",
    "trio",
    "sqlite3",
    "zeroconf",
    "threading",
    "asyncio",
}

# Imports the module, then prints {forbidden module: chain of p2pcomm files that led to
# its import} for every forbidden module that got loaded.
_PROBE = """
import importlib, json, sys, traceback
watched = set(sys.argv[2:])
chains = {}
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name in watched and name not in chains:
            chains[name] = [
                f"{f.filename.rsplit('/p2pcomm/', 1)[-1]}:{f.lineno}"
                for f in traceback.extract_stack()
                if "/p2pcomm/" in f.filename
            ]
        return None
sys.meta_path.insert(0, Spy())
importlib.import_module(sys.argv[1])
print(json.dumps({m: chains.get(m, []) for m in sorted(watched) if m in sys.modules}))
"""


def test_discovery_finds_the_core_modules() -> None:
    assert {"p2pcomm.core.encoding", "p2pcomm.core.log", "p2pcomm.core.crypto"} <= set(CORE_MODULES)
    assert CORE_DIR / "log.py" in CORE_FILES


@pytest.mark.slow
@pytest.mark.parametrize("module", CORE_MODULES)
def test_importing_core_loads_no_io_modules(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE, module, *sorted(NOT_LOADED)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert loaded == {}, f"importing {module} loads {sorted(loaded)}, via: {loaded}"


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Top-level package names a module imports, anywhere in it."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_source_imports_nothing_forbidden(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [(line, name) for line, name in _imported_names(tree) if name in NOT_IMPORTED]
    assert bad == [], f"{path.name} imports {bad}"


def test_the_static_check_sees_every_import_form() -> None:
    src = (
        "import os.path\n"
        "from time import monotonic\n"
        "def f():\n"
        "    import random\n"
        "    __import__('secrets')\n"
        "    importlib.import_module('socket')\n"
        "from . import sibling\n"
    )
    assert sorted(n for _, n in _imported_names(ast.parse(src))) == [
        "os",
        "random",
        "secrets",
        "socket",
        "time",
    ]
