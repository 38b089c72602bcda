"""The layer rule of docs/architecture.md: a module imports only from its own layer or lower."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# lower number = lower layer; a package's modules may import packages of the same or a lower number
LAYERS = {
    "models": 0,
    "retainwise.config": 0,
    "retainwise.adapters": 1,
    "migrations": 1,
    "retainwise.uploads": 2,
    "retainwise.modelops": 2,
    "tasks": 3,
    "flows": 4,
    "retainwise.runtime": 5,
    "retainwise.entrypoints": 5,
    "retainwise.local": 5,
}
# third-party packages a layer must not touch: the upload pipeline gets its S3 I/O passed in
FORBIDDEN = {
    "models": {"prefect", "boto3", "botocore", "mlflow", "sqlalchemy"},
    "retainwise.uploads": {"prefect", "boto3", "botocore", "mlflow", "sqlalchemy"},
    "retainwise.config": {"prefect", "boto3", "mlflow", "sqlalchemy"},
}


def layer_of(module: str) -> str | None:
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    return max(matches, key=len) if matches else None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    roots = ["models", "retainwise", "tasks", "flows", "migrations"]
    return sorted(
        p
        for root in roots
        for p in (REPO / root).rglob("*.py")
        if p != REPO / "retainwise" / "__init__.py"
    )


def violations(path: Path) -> list[str]:
    own = layer_of(module_name(path))
    if own is None:
        return [f"{path.relative_to(REPO)} is in no layer: add its package to LAYERS"]
    problems = []
    for line, target in imported_modules(path):
        other = layer_of(target)
        if other is not None and LAYERS[other] > LAYERS[own]:
            problems.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {target} ({other})")
        if target.split(".")[0] in FORBIDDEN.get(own, ()):
            problems.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {target}")
    return problems


def test_every_module_imports_only_its_own_layer_or_lower_ones():
    problems = [problem for path in source_files() for problem in violations(path)]
    assert problems == []


# modules import one another in one direction only (no import circle, even inside functions),
# inside or across these packages; `models` joins once models.explain <-> models.reasons is broken
CIRCLE_FREE = ["retainwise", "tasks", "flows", "migrations"]


def import_graph(package: str) -> dict[str, set[str]]:
    """Each module of `package` and the modules of `package` it imports."""
    modules = {module_name(p): p for p in source_files() if module_name(p).startswith(package)}
    return {
        name: {target for _, target in imported_modules(path) if target in modules} - {name}
        for name, path in modules.items()
    }


@pytest.mark.parametrize("package", CIRCLE_FREE)
def test_no_import_circle_in(package):
    graphlib.TopologicalSorter(import_graph(package)).prepare()  # CycleError names the circle


def test_retainwise_has_no_modules_outside_the_layer_packages():
    loose = [p.name for p in (REPO / "retainwise").glob("*.py") if p.name != "__init__.py"]
    assert loose == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from retainwise.runtime import trigger\n", "imports retainwise.runtime"),
        ("import boto3\n", "imports boto3"),
        (
            "def f():\n    from flows.score_upload import score_upload\n",
            "imports flows.score_upload",
        ),
    ],
)
def test_the_rule_catches_an_upward_or_forbidden_import(tmp_path, monkeypatch, source, expected):
    fake = REPO / "retainwise" / "uploads" / "_layer_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert any(expected in problem for problem in violations(fake))
