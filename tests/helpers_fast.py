"""`make test-fast`'s plugin (`-p tests.helpers_fast`): the unit tests on two xdist workers.

- Files that hold only end-to-end tests (tests/conftest.py's E2E_PATHS) are not collected under
  `-m "not e2e"`: every worker collects every file, so each of their imports (Prefect's server,
  aws_cdk, Playwright) cost both workers for tests that are deselected anyway.
- The files that read one shared fit (conftest's `telco_trained`, helpers' `trained_on_synthetic`)
  or import Prefect run on one worker as a group (`--dist loadgroup`, scheduled by this plugin's
  SharedFitScheduling; every other file is a group of its own, as with `loadfile`), so each fit or
  import is paid once, not once per worker.
- The slowest unit files are handed out first (with `--no-loadscope-reorder`, xdist gives files
  out in collection order, one at a time as a worker runs dry), so no worker is left running a long
  one alone at the end while the other is idle. Figures: README.md, `make test-fast`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

# measured with `--durations=0` summed per file (wall on an idle 2-core machine), longest first;
# a file missing here runs after them, in collection order
SLOWEST_FIRST = (
    "tests/retainwise/uploads/test_halves.py",  # a spawned helper process
    "tests/retainwise/runtime/test_webhooks.py",  # a receiver thread per test
    "tests/retainwise/adapters/test_webhooks.py",
    "tests/retainwise/uploads/test_streaming.py",
    "tests/migrations/test_migrations.py",  # PostgreSQL
    "tests/retainwise/local/test_stack.py",  # process groups
    "tests/models/test_explain.py",  # trains Telco's other candidate
    "tests/retainwise/uploads/test_validation.py",
    "tests/retainwise/adapters/test_accounts.py",
    "tests/retainwise/entrypoints/test_cli_production.py",  # subprocesses
    "tests/models/test_compiled.py",  # compiles trees with a C compiler
    "tests/retainwise/adapters/test_db_roles.py",  # PostgreSQL roles
)


# files sharing an expensive fit or import: one xdist group each (the rest: a group per file)
SHARED_FITS = {
    "telco": (
        "tests/retainwise/uploads/test_halves.py",
        "tests/retainwise/uploads/test_actions.py",
        "tests/models/test_compiled.py",
        "tests/models/test_telco.py",
        "tests/models/test_explain.py",
        "tests/models/test_tree_tables.py",
    ),
    "synthetic-800": (
        "tests/retainwise/uploads/test_contacts.py",
        "tests/retainwise/uploads/test_scoring.py",
        "tests/retainwise/uploads/test_carry.py",
        "tests/retainwise/uploads/test_fuzz.py",
    ),
    # the unit tests that import Prefect (in the tests, not at collection): one worker imports it
    "prefect": (
        "tests/tasks/test_history.py",
        "tests/tasks/test_status.py",
        "tests/tasks/test_background.py",
        "tests/tasks/test_retry.py",
        "tests/deployments/test_prefect_yaml.py",
    ),
}
GROUP_OF = {path: group for group, paths in SHARED_FITS.items() for path in paths}


def only_unit_tests(config: pytest.Config) -> bool:
    return config.getoption("markexpr", "").split() == ["not", "e2e"]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not only_unit_tests(config) or not collection_path.is_relative_to(REPO):
        return None
    from tests.conftest import E2E_PATHS

    relative = collection_path.relative_to(REPO).as_posix()
    if collection_path.is_dir():
        relative += "/"
    return True if relative.startswith(E2E_PATHS) else None


def relative(item: pytest.Item) -> str:
    return Path(item.path).relative_to(REPO).as_posix()


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own, which picks by --dist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` as SHARED_FITS says, by file path: xdist's own groups by an `@group`
    suffix it writes into `item._nodeid`, which pytest 9 no longer reads (nodeid is `item._id`),
    so every test had been a unit of its own and both workers built each module's fixtures."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return GROUP_OF.get(path, path)

    return SharedFitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = relative(item)
        first = next(
            (p for p in SLOWEST_FIRST if GROUP_OF.get(p, p) == GROUP_OF.get(path, path)), None
        )
        return SLOWEST_FIRST.index(first) if first else len(SLOWEST_FIRST)

    items.sort(key=rank)
