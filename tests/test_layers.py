"""The import contract (pyproject's [tool.importlinter]) holds, and it fails on a deliberate
cycle: import-linter runs on a copy of the package that has an upward import added.

The copy goes first on PYTHONPATH, so lint-imports reads the copy, with the repository's
own contracts; nothing in the repository changes.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "platform" / "modelfactory"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT_IMPORTS.exists(), reason="import-linter (the dev extra) is not installed"
)


def _lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the repository's contracts, on the package found under source_root."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
        cwd=source_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_with(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package whose `module` (a path under modelfactory/) ends with `line`."""
    root = tmp_path / "src"
    shutil.copytree(PACKAGE, root / "modelfactory", ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "modelfactory" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return root


def test_the_package_keeps_its_contracts() -> None:
    result = _lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_and_the_plain_python_rule(tmp_path: Path) -> None:
    """The project contract importing the asset factory: a lower layer reaching up, and
    through it, dagster in the plain-Python layers."""
    root = _copy_with(tmp_path, "project/spec.py", "from modelfactory.orchestration import assets")
    result = _lint_imports(root)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())  # import-linter wraps long lines
    assert "modelfactory.project is not allowed to import modelfactory.orchestration" in out
    assert "modelfactory.project.spec -> modelfactory.orchestration.assets" in out
    assert "modelfactory.project is not allowed to import dagster" in out


def test_a_cycle_inside_one_layer_is_caught(tmp_path: Path) -> None:
    """urls is what home builds links with; home imported back from urls closes a cycle that
    the layers contract alone (one layer, stores) would not see."""
    root = _copy_with(tmp_path, "stores/urls.py", "from modelfactory.stores import home")
    result = _lint_imports(root)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "No cycles are allowed in modelfactory.stores" in out
    assert ".urls -> .home" in out or ".home -> .urls" in out


def test_the_readme_layout_names_every_module() -> None:
    """README's module map is the tree: a module added, moved or renamed shows up here."""
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    layout = layout[layout.index("```") : layout.index("```", layout.index("```") + 3)]
    missing = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "templates" not in path.parts
        and path.name not in ("__init__.py", "__main__.py")
        and path.name not in layout
    ]
    packages = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    missing += [f"{name}/" for name in packages if f"{name}/" not in layout]
    assert not missing, f"README.md's Layout does not name: {missing}"


def _imports_in_functions(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function of the file at path."""
    tree = ast.parse(path.read_text())
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    found += [(node.lineno, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    found.append((node.lineno, node.module))
    return sorted(set(found))


_DISTRIBUTIONS = {
    "sklearn": "scikit_learn",
    "markdown_it": "markdown_it",
    "yaml": "pyyaml",
    "pydantic_core": "pydantic",
}


def _deferral_unexplained(path: Path, line: int, module: str) -> str | None:
    """Why the import at path:line may not sit inside a function, or None when it may."""
    lines = path.read_text().splitlines()
    root = module.split(".")[0]
    if root in sys.stdlib_module_names:
        return "the standard library is cheap: import it at the top"
    near = lines[max(0, line - 4) : line + 2]  # the comment may sit in its parentheses
    if any("#" in text for text in near):
        return None
    declared = [text for text in lines if text.startswith("# Deferred imports:")]
    if root != "modelfactory" and declared:
        # a module's "# Deferred imports:" comment names its libraries and why, wrapped
        start = lines.index(declared[0])
        block = " ".join(lines[start : start + 6]).lower().replace("-", "_")
        if root in block or _DISTRIBUTIONS.get(root, root) in block:
            return None
    return "no reason given: a comment beside it, or the module's `# Deferred imports:` line"


def test_imports_inside_functions_are_heavy_and_say_why() -> None:
    """Imports sit at the top of a module, except a heavy library's (mlflow, dagster, pandas,
    evidently ...) or a module that loads one, deferred so that a light entry point (the
    CLI's --help, the endpoint's start, a code server) does not pay for it. Each says why,
    beside it or in its module's `# Deferred imports:` comment."""
    unexplained = [
        f"{path.relative_to(REPO)}:{line} {module}: {why}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, module in _imports_in_functions(path)
        if (why := _deferral_unexplained(path, line, module))
    ]
    assert not unexplained, "\n".join(unexplained)
