"""The CLI as a daily tool (issue #27, point 10): every option explained, no reST markup in --help, no Python
spelling in messages, no third-party noise on stderr."""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

from gtex_models.interfaces.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
REST = re.compile(r"``|:(mod|func|class|meth|data|attr):`")
PYTHON_SPELLING = re.compile(r"\b[a-z_]+=(True|False|None|'|\")")


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_option_has_help_and_no_help_shows_rest_markup():
    undocumented, marked_up = [], []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help:
                undocumented.append(f"{' '.join(path)} {'/'.join(action.option_strings)}")
        if REST.search(parser.format_help()):
            marked_up.append(" ".join(path) or "(top level)")
    assert undocumented == [] and marked_up == []


def _message_strings():
    """The string pieces of every exception raised and warning issued in the package."""
    for path in sorted((ROOT / "gtex_models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "warn":
                target = node
            else:
                continue
            for piece in ast.walk(target):
                if isinstance(piece, ast.Constant) and isinstance(piece.value, str):
                    yield f"{path.relative_to(ROOT)}:{piece.lineno}", piece.value


def test_no_message_speaks_python_or_rest():
    """Errors and warnings reach CLI and app users: `--overwrite`, not `overwrite=True`."""
    found = [f"{where}: {text!r}" for where, text in _message_strings()
             if PYTHON_SPELLING.search(text) or REST.search(text)]
    assert found == []


def test_third_party_warnings_are_not_shown():
    """umap warns "Tensorflow not installed; ParametricUMAP will be unavailable" when imported (study build
    computes UMAPs); a user sees the project's warnings only, each once."""
    code = """
import sys, warnings
from gtex_models.interfaces.cli import main as cli

def noisy(args):
    import umap  # noqa: F401  (its import warning)
    from gtex_models.analysis.benchmark import scenario_data
    from gtex_models.data.simulate import simulate_cohort
    cohort = simulate_cohort(n_donors=6, n_genes=400)  # groups without training donors: a warning
    for _ in range(2):  # the project's own warning, twice
        scenario_data(cohort)
    return "done"

cli.study_info_command = noisy
sys.exit(cli.main(["study", "info", "--study", "anywhere"]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "Tensorflow" not in result.stderr and "RuntimeWarning" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "have no training donors are left out" in lines[0] and lines[0].endswith("(2 times)")
