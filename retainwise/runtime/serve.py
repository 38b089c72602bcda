"""The warm runner: serves deployments and runs their flow runs in warm processes.

In production `retainwise runner` (an ECS service) serves RUNNER_DEPLOYMENTS, score-upload and
reap-stale; large uploads, training and migrations run on the `ecs` work pool (prefect.yaml). The
local stack serves all of them here, since it has no ECS. `python -m retainwise.runtime.serve`
forks warm workers (retainwise.runtime.worker) that execute runs in-process; `--cold` falls back to
Prefect's `serve`, which starts a fresh interpreter per run.
"""

import argparse
import os

from flows.migrate import migrate
from flows.reap_stale import reap_stale
from flows.score_upload import score_upload
from flows.train_model import train_model

REAP_EVERY_SECONDS = 60
RUNNER_DEPLOYMENTS = ("score-upload", "reap-stale")


def deployments(only: list[str] | None = None) -> list:
    """(flow, deployment) pairs: the warm runner executes the flow objects themselves."""
    every = [
        (score_upload, score_upload.to_deployment(name="score-upload", tags=["scoring"])),
        (score_upload, score_upload.to_deployment(name="score-upload-large", tags=["scoring"])),
        (migrate, migrate.to_deployment(name="migrate")),
        (train_model, train_model.to_deployment(name="train-model")),
        (reap_stale, reap_stale.to_deployment(name="reap-stale", interval=REAP_EVERY_SECONDS)),
    ]
    return [pair for pair in every if only is None or pair[1].name in only]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="serve the RetainWise deployments")
    parser.add_argument("--processes", type=int, default=min(os.cpu_count() or 2, 4),
                        help="warm worker processes, i.e. flow runs at once "
                             "(default: cores, at most 4)")
    parser.add_argument("--only", nargs="+", metavar="DEPLOYMENT",
                        help="serve only these deployments (default: all)")
    parser.add_argument("--cold", action="store_true",
                        help="use Prefect's serve: a fresh interpreter per flow run")
    args = parser.parse_args(argv)
    if args.cold:
        from prefect import serve

        serve(*(deployment for _, deployment in deployments(args.only)), limit=4)
        return
    from retainwise.config.settings import Settings
    from retainwise.runtime.worker import serve_warm

    serve_warm(deployments(args.only), args.processes, Settings().home_dir / "worker")


if __name__ == "__main__":
    main()
