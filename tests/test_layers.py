"""The package's layers (README, "Development"): each unit imports only its own layer and those
below it, so no arrow runs back up and there is no import circle between units. Read from the
source with ``ast``, so a lazy import inside a function counts too."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "clasr"

# Top to bottom; a unit is a subpackage or a top-level module of clasr.
LAYERS = (
    {"cli", "__main__"},
    {"bench"},
    {"experiment"},
    {"report"},
    {"strategies"},
    {"train", "evaluate", "decoding", "engines", "guard", "reference_loss"},
    {"adapters", "curvature", "metrics", "transforms"},
    {"models"},
    {"data"},
    {"atomic", "printable", "progress", "precision", "distributed", "tracking", "__init__"},
)
LEVEL = {unit: len(LAYERS) - i for i, layer in enumerate(LAYERS) for unit in layer}


def unit_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_units(path: Path) -> set[str]:
    """The clasr units that the module at ``path`` imports (absolute imports of ``clasr.*``)."""
    units = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        units |= {name.split(".")[1] for name in names if name.startswith("clasr.")}
    return units


def import_edges() -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) → the modules where that import is written."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for target in imported_units(path) - {unit_of(path)}:
            edges.setdefault((unit_of(path), target), []).append(str(path.relative_to(PACKAGE)))
    return edges


def test_every_unit_has_a_layer():
    units = {unit_of(path) for path in PACKAGE.rglob("*.py")}
    assert units - set(LEVEL) == set(), "place the new unit in LAYERS (and in the README's list)"


def test_no_import_runs_back_up():
    upward = [f"{source} → {target} ({', '.join(where)})" for (source, target), where in import_edges().items()
              if LEVEL.get(target, 0) > LEVEL.get(source, 0)]
    assert upward == []


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: a lazy upward import written inside a function is found."""
    fake = tmp_path / "clasr"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "x.py").write_text("def f():\n    from clasr.experiment.runner import run_experiment\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert import_edges() == {("data", "experiment"): ["data/x.py"]}
    with pytest.raises(AssertionError):
        test_no_import_runs_back_up()
