"""The layout keeps its shape: layers import only downward (import-linter), no private names cross
modules, imports inside functions only for optional dependencies, short functions and modules."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path
from tests.helpers import ROOT

PACKAGE = ROOT / "ppox"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
OPTIONAL = {"ray", "moviepy", "pgx", "tokenizers", "ale_py", "envpool", "optuna", "jinja2", "pyarrow"}  # extras: imported where used, with a message naming the extra
# importing gymnax starts JAX's backend, which jax.distributed.initialize() (--distributed) must precede
BACKEND_STARTING = {"gymnax"}


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=package_parent, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"})


def test_layers_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: \d+ kept, 0 broken", result.stdout)


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The check can fail: the same package with core importing the training layer is refused."""
    shutil.copytree(PACKAGE, tmp_path / "ppox", ignore=shutil.ignore_patterns("__pycache__"))
    gae = tmp_path / "ppox" / "core" / "advantages.py"
    gae.write_text(gae.read_text() + "\nfrom ppox.run.training import train  # noqa: E402  (deliberately upward)\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "ppox.core.advantages -> ppox.run.training" in result.stdout


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def test_no_private_name_is_imported_across_modules():
    crossings = [f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                 for path, tree in _modules() for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ppox")
                 for alias in node.names if alias.name.startswith("_") and alias.name != "__version__"]
    assert crossings == []


def test_imports_inside_functions_are_for_optional_dependencies_only():
    """(The CLI imports each command's modules when it runs, so that `ppox --help` answers at once.)"""
    lazy = []
    for path, tree in _modules():
        if path.parent.name == "cli" or path.relative_to(PACKAGE) == Path("__init__.py"):
            continue  # (ppox/__init__ imports its names on first use, so that `import ppox.cli` is light)
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                        if name.split(".")[0] not in OPTIONAL | BACKEND_STARTING:
                            lazy.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert lazy == []


def test_functions_and_modules_stay_short():
    long = []
    for path, tree in _modules():
        lines = len(path.read_text().splitlines())
        if lines > 320:
            long.append(f"{path.relative_to(ROOT)} is {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 65:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is "
                            f"{node.end_lineno - node.lineno + 1} lines")
    assert long == []


def architecture_table_rows(text: str) -> list[str]:
    """The first cell of each row of docs/architecture.md's layout table (the section "## Layout"), as
    "ppox.a | ppox.b": the backticked package names of the cell, siblings joined by " | "."""
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past the header and its rule
    cells = [re.split(r"(?<!\\)\|", row)[1] for row in rows]
    return [" | ".join(re.findall(r"`(ppox[\w.]*)`", cell)) for cell in cells]


def contract_layers(pyproject: str) -> list[str]:
    """The top-level contract's layers (the one without containers), spaces around "|" normalised."""
    import tomllib

    contracts = tomllib.loads(pyproject)["tool"]["importlinter"]["contracts"]
    (top,) = [c for c in contracts if c["type"] == "layers" and not c.get("containers")]
    return [" | ".join(part.strip() for part in layer.split("|")) for layer in top["layers"]]


def test_architecture_table_follows_the_contract():
    """docs/architecture.md's layout table has one row per layer of the contract, same packages, same order."""
    contract = contract_layers((ROOT / "pyproject.toml").read_text())
    assert len(contract) >= 10
    assert architecture_table_rows((ROOT / "docs" / "architecture.md").read_text()) == contract


def test_the_architecture_check_can_fail():
    """Two rows swapped, a row missing or a sibling moved to its own row are each caught."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    contract = contract_layers((ROOT / "pyproject.toml").read_text())
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| `ppox.cli`"))
    swapped = lines[:first] + [lines[first + 1], lines[first]] + lines[first + 2 :]
    missing = lines[:first] + lines[first + 1 :]
    split = text.replace("`ppox.drivers` \\| `ppox.acting`", "`ppox.drivers`")
    for variant in ("\n".join(swapped), "\n".join(missing), split):
        assert architecture_table_rows(variant) != contract


def test_architecture_table_names_every_module():
    """Each package row's modules column names exactly the modules of its packages (no stale or missing one)."""
    section = (ROOT / "docs" / "architecture.md").read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    problems = []
    for row in [line for line in section.splitlines() if line.startswith("|")][2:]:
        cells = re.split(r"(?<!\\)\|", row)
        folders = [PACKAGE / name.split(".", 1)[1] for name in re.findall(r"`(ppox\.\w+)`", cells[1])]
        folders = [folder for folder in folders if folder.is_dir()]
        if not folders:
            continue  # ppox.errors | ppox._version: modules, not packages
        have = {path.stem for folder in folders for path in folder.glob("*.py")} - {"__init__", "__main__"}
        named = set(re.findall(r"`(\w+)`", cells[3])) - {"__init__", "__main__"}
        if have != named:
            problems.append(f"{cells[1].strip()}: missing {sorted(have - named)}, no such module {sorted(named - have)}")
    assert problems == []
