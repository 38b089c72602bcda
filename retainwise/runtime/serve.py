"""The local flow runner: serves the deployments and runs their flow runs in warm processes.

Serves the deployments of flows/deployments.py (which prefect.yaml matches) for the `local` stack;
on AWS the `ecs` work pool runs them. `python -m retainwise.runtime.serve` forks warm workers
(retainwise.runtime.worker) that execute runs in-process; `--cold` falls back to Prefect's
`serve`, which starts a fresh interpreter per run.
"""

import argparse
import os

from flows.deployments import DEPLOYMENTS


def deployments() -> list:
    """(flow, deployment) pairs: the warm runner executes the flow objects themselves."""
    return [(definition.flow(), definition.to_deployment()) for definition in DEPLOYMENTS]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="serve the RetainWise deployments")
    parser.add_argument("--processes", type=int, default=min(os.cpu_count() or 2, 4),
                        help="warm worker processes, i.e. flow runs at once "
                             "(default: cores, at most 4)")
    parser.add_argument("--cold", action="store_true",
                        help="use Prefect's serve: a fresh interpreter per flow run")
    args = parser.parse_args(argv)
    if args.cold:
        from prefect import serve

        serve(*(deployment for _, deployment in deployments()), limit=4)
        return
    from retainwise.config.settings import Settings
    from retainwise.runtime.worker import serve_warm

    serve_warm(deployments(), args.processes, Settings().home_dir / "worker")


if __name__ == "__main__":
    main()
