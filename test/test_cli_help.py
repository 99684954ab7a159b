"""Every command-line tool of the suite explains itself with --help (and exits 0)."""
import ast
import subprocess

import pytest

from conftest import REPO, executable


def tools() -> list[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "TOOLS":
            return sorted(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no TOOLS table")


@pytest.mark.parametrize("tool", tools())
def test_tool_help(tool):
    run = subprocess.run([executable(tool), "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage:") and len(run.stdout.splitlines()) > 3


@pytest.mark.parametrize("benchmark", ["node-overhead", "high-resolution-pose", "continual", "continual-video",
                                       "face-recognition", "active-vision", "spa"])
def test_benchmark_help(benchmark):
    run = subprocess.run([executable("opendr-bench"), benchmark, "--help"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("usage: opendr-bench " + benchmark), run.stderr
