"""Every `modelfactory` command answers --help, and asking for help stays light.

`modelfactory --help` is the first thing a person runs: it must answer at once, so the CLI
imports dagster, mlflow and fastapi only inside the commands that use them. The import check
runs in a fresh interpreter: this test process has them imported already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from modelfactory.cli import main

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("dagster", "mlflow", "fastapi")  # what the commands import only when they run


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command's name path under the root group, nested groups included."""
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


COMMANDS = _command_paths(main)

# Asks for help with the root group and each command, then says which heavy libraries loaded.
_PROBE = """
import json, sys
from modelfactory.cli import main
for args in json.loads(sys.argv[1]):
    try:
        main([*args, "--help"], prog_name="modelfactory", standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, (args, exc.code)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[2]))))
"""


def test_the_cli_has_the_commands_its_docstring_lists() -> None:
    """A command lost in the split into modules would vanish silently from --help."""
    expected = {
        "new", "check", "dev", "serve", "seed", "train", "predict", "status", "approve",
        "rollback", "history", "reproduce", "diff", "demo",
    }  # fmt: skip
    assert set(main.commands) == expected


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "modelfactory")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_answers_help(path: tuple[str, ...], flag: str) -> None:
    result = CliRunner().invoke(main, [*path, flag], prog_name="modelfactory")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: modelfactory {' '.join(path)}".rstrip())
    assert result.exception is None


def test_help_imports_neither_dagster_nor_mlflow() -> None:
    """Importing the CLI and asking every command for help loads no heavy library."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([[], *COMMANDS]), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_console_script_and_python_m_answer_help() -> None:
    """pyproject's `modelfactory` script names a click command, and `python -m modelfactory
    --help` (what `make dev` runs its children with) exits 0 listing every command."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts["modelfactory"].partition(":")
    assert getattr(import_module(module), attribute) is main
    done = subprocess.run(
        [sys.executable, "-m", "modelfactory", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line}
    assert listed == set(main.commands)
