"""The local flow runner: serves the deployments and runs each flow run in a subprocess."""

from prefect import serve

from flows.migrate import migrate
from flows.score_upload import score_upload
from flows.train_model import train_model


def main() -> None:
    serve(
        score_upload.to_deployment(name="score-upload", tags=["scoring"]),
        migrate.to_deployment(name="migrate"),
        train_model.to_deployment(name="train-model"),
        limit=4,
    )


if __name__ == "__main__":
    main()
