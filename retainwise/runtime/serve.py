"""The warm runner: serves deployments and runs their flow runs in warm processes.

In production `retainwise runner` (an ECS service) serves RUNNER_DEPLOYMENTS, score-upload and
reap-stale; large uploads, training and migrations run on the `ecs` work pool (prefect.yaml). The
local stack serves all of them here, since it has no ECS. Every deployment is defined once in
flows/deployments.py. `python -m retainwise.runtime.serve` forks warm workers
(retainwise.runtime.worker) that execute runs in-process; `--cold` falls back to Prefect's
`serve`, which starts a fresh interpreter per run.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from flows.deployments import DEPLOYMENTS

if TYPE_CHECKING:
    from retainwise.config.settings import Settings

RUNNER_DEPLOYMENTS = tuple(d.name for d in DEPLOYMENTS if d.warm)  # `retainwise runner`


def deployments(only: list[str] | None = None) -> list:
    """(flow, deployment) pairs: the warm runner executes the flow objects themselves."""
    return [(d.flow(), d.to_deployment()) for d in DEPLOYMENTS if only is None or d.name in only]


def main(argv: list[str] | None = None, settings: Settings | None = None) -> None:
    """`settings`: the CLI command's (`retainwise runner`); read here when started on its own."""
    parser = argparse.ArgumentParser(description="serve the RetainWise deployments")
    parser.add_argument(
        "--processes",
        type=int,
        default=min(os.cpu_count() or 2, 4),
        help="warm worker processes, i.e. flow runs at once (default: cores, at most 4)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="DEPLOYMENT",
        help="serve only these deployments (default: all)",
    )
    parser.add_argument(
        "--cold", action="store_true", help="use Prefect's serve: a fresh interpreter per flow run"
    )
    args = parser.parse_args(argv)
    if args.cold:
        from prefect import serve

        serve(*(deployment for _, deployment in deployments(args.only)), limit=4)
        return
    from retainwise.config.settings import Settings
    from retainwise.runtime import scaling_reporter
    from retainwise.runtime.worker import serve_warm

    settings = settings or Settings()
    serve_warm(
        deployments(args.only),
        args.processes,
        settings.home_dir / "worker",
        settings,
        reporter=scaling_reporter.for_settings(settings),  # production only
    )


if __name__ == "__main__":
    main()
