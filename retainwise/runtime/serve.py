"""The local flow runner: serves the deployments and runs their flow runs in warm processes.

Mirrors prefect.yaml's deployments for the `local` stack; on AWS the `ecs` work pool runs them.
`python -m retainwise.runtime.serve` forks warm workers (retainwise.runtime.worker) that execute runs in-process;
`--cold` falls back to Prefect's `serve`, which starts a fresh interpreter per run.
"""

import argparse
import os

from flows.migrate import migrate
from flows.monitor import monitor
from flows.reap_stale import reap_stale
from flows.score_upload import score_upload
from flows.train_model import train_model

REAP_EVERY_SECONDS = 60
MONITOR_EVERY_SECONDS = 3600


def retrain_when_degraded() -> list:
    """The automation behind the retraining loop (prefect.yaml declares the same trigger)."""
    from prefect.events import DeploymentEventTrigger

    model = "{{ event.resource['retainwise.model'] }}"
    return [DeploymentEventTrigger(match={"prefect.resource.id": "retainwise.model.*"},
                                   expect={"retainwise.model.degraded"},
                                   parameters={"name": model, "outcomes_of": model})]


def deployments() -> list:
    """(flow, deployment) pairs: the warm runner executes the flow objects themselves."""
    return [
        (score_upload, score_upload.to_deployment(name="score-upload", tags=["scoring"])),
        (migrate, migrate.to_deployment(name="migrate")),
        (train_model, train_model.to_deployment(name="train-model",
                                                triggers=retrain_when_degraded())),
        (monitor, monitor.to_deployment(name="monitor", interval=MONITOR_EVERY_SECONDS)),
        (reap_stale, reap_stale.to_deployment(name="reap-stale", interval=REAP_EVERY_SECONDS)),
    ]


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
