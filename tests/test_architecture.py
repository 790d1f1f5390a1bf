"""The layering of docs/architecture.md, checked on the source: arrows only point down, no import
cycles, no training function longer than a screen, and the code clean under the committed ruff
configuration."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ttskit"

# What each layer may import of ttskit (besides itself); docs/architecture.md has the picture.
LEAVES = {"ttskit.errors", "ttskit.runtime", "ttskit.config", "ttskit.work", "ttskit.audio", "ttskit.text",
          "ttskit.assets"}
ALLOWED = {
    "ttskit.models": LEAVES,
    "ttskit.checkpoints": LEAVES | {"ttskit.models"},
    "ttskit.skeleton": LEAVES | {"ttskit.checkpoints"},
    "ttskit.align": LEAVES | {"ttskit.models", "ttskit.checkpoints", "ttskit.skeleton"},
    "ttskit.data": LEAVES | {"ttskit.models", "ttskit.checkpoints", "ttskit.skeleton", "ttskit.align"},
    "ttskit.synthesis": LEAVES | {"ttskit.models", "ttskit.checkpoints"},
    "ttskit.evaluation": LEAVES | {"ttskit.models", "ttskit.checkpoints", "ttskit.synthesis"},
    "ttskit.train": LEAVES | {"ttskit.models", "ttskit.checkpoints", "ttskit.skeleton", "ttskit.data", "ttskit.align",
                              "ttskit.synthesis"},
    # the package root holds only __version__, which exports and the server report
    "ttskit.deploy": LEAVES | {"ttskit", "ttskit.models", "ttskit.checkpoints", "ttskit.synthesis"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def ttskit_imports(path: Path) -> set[str]:
    """Every ttskit module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ttskit")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ttskit"):
            found |= {f"{node.module}.{alias.name}" if (PACKAGE.parent / (node.module + "." + alias.name)
                                                        .replace(".", "/")).with_suffix(".py").is_file()
                      else node.module for alias in node.names}
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


SOURCES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_arrows_only_point_down():
    upward = []
    for module, path in SOURCES.items():
        layer = layer_of(module)
        if layer not in ALLOWED:
            continue
        for imported in ttskit_imports(path):
            target = layer_of(imported)
            if target != layer and target not in ALLOWED[layer]:
                upward.append(f"{module} imports {imported}")
    assert not upward, upward


def test_leaves_import_no_layer_above_them():
    for module, path in SOURCES.items():
        if layer_of(module) in LEAVES:
            above = [i for i in ttskit_imports(path) if layer_of(i) not in LEAVES]
            assert not above, (module, above)


def test_no_import_cycle():
    graph = {m: {i for i in ttskit_imports(p) if i in SOURCES and i != m} for m, p in SOURCES.items()}
    # A package's __init__ importing its own submodules is how packages export; not a cycle.
    graph = {m: {i for i in deps if not (i.startswith(m + ".") and SOURCES[m].name == "__init__.py")}
             for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_no_training_function_over_80_lines():
    long = []
    for path in [*(PACKAGE / "train").rglob("*.py"), *(PACKAGE / "skeleton").rglob("*.py"),
                 PACKAGE / "align" / "learned" / "training.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.name}:{node.name} {lines} lines")
    assert not long, long


def test_inference_never_loads_training_code():
    code = ("import sys; import ttskit.synthesis, ttskit.synthesis.copy_synthesis, ttskit.evaluation.produce, "
            "ttskit.checkpoints.vocoder, ttskit.checkpoints.acoustic; "
            "print(sorted(m for m in sys.modules if m.startswith(('ttskit.train', 'ttskit.skeleton'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_ruff_is_clean():  # ruff comes with the test extra
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "ttskit", "tests", "tools", "benchmarks", "recipes"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cli_starts_without_torch():
    """`ttskit --help` and every command's option parsing stay fast: torch loads when a command runs."""
    code = "import sys, ttskit.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_speaking_with_the_default_voice_loads_neither_scipy_signal_nor_numba():
    """Cold start (`ttskit synth "Hello." -o x.wav` as a fresh process) pays every import on the way:
    scipy.signal took ~0.7 s (a Kaiser window for PQMF filters, now numpy's) and numba ~0.2 s (the
    training-time length regulator; synthesis regulates length in torch)."""
    code = ("import sys; from ttskit.synthesis.synthesizer import Synthesizer; Synthesizer.default().tts('Hello.'); "
            "print(sorted(m for m in ('scipy.signal', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
