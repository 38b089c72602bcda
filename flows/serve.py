"""The local flow runner: serves the deployments and runs each flow run in a subprocess.

Mirrors prefect.yaml's deployments for the `local` stack; on AWS the `ecs` work pool runs them.
"""

from prefect import serve

from flows.migrate import migrate
from flows.reap_stale import reap_stale
from flows.score_upload import score_upload
from flows.train_model import train_model

REAP_EVERY_SECONDS = 60


def main() -> None:
    serve(
        score_upload.to_deployment(name="score-upload", tags=["scoring"]),
        migrate.to_deployment(name="migrate"),
        train_model.to_deployment(name="train-model"),
        reap_stale.to_deployment(name="reap-stale", interval=REAP_EVERY_SECONDS),
        limit=4,
    )


if __name__ == "__main__":
    main()
