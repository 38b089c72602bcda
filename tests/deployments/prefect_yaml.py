"""prefect.yaml read the way `prefect deploy` reads it, for the tests that check it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"
_ENV_PLACEHOLDER = re.compile(r"\{\{\s*\$(\w+)\s*\}\}")


def placeholders(path: Path = PREFECT_YAML) -> set[str]:
    return set(_ENV_PLACEHOLDER.findall(path.read_text()))


def load_deployments(environ: Mapping[str, str], path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """prefect.yaml's deployments, every `{{ $NAME }}` filled from `environ`; names any missing."""
    missing = sorted(placeholders(path) - set(environ))
    if missing:
        raise KeyError(f"prefect.yaml needs these environment variables: {', '.join(missing)}")
    filled = _ENV_PLACEHOLDER.sub(lambda m: environ[m.group(1)], path.read_text())
    return yaml.safe_load(filled)["deployments"]
