"""`make demo`: the whole story on the embedded default stack, from nothing to a results CSV."""

from __future__ import annotations

import time

from retainwise.config.settings import Settings

DEMO_ACCOUNT = "demo"


def main() -> None:
    from retainwise.local import stack

    settings = Settings()
    started = time.monotonic()
    step = lambda text: print(f"[{time.monotonic() - started:5.1f}s] {text}", flush=True)  # noqa: E731
    step("starting the local stack (moto S3/SQS, Prefect server, runner, SQS trigger)")
    stack.up(settings)
    try:
        results = run_story(settings, step)
    finally:
        step("stopping the local stack")
        stack.down(settings)
    step("done")
    print(results)


def run_story(settings: Settings, step):
    import pandas as pd

    from retainwise.entrypoints import cli
    from retainwise.local import stack
    from retainwise.local.sample import synthetic_customers

    step("migrating the database")
    cli.main(["migrate"])
    data_dir = settings.home_dir / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    training, upload = data_dir / "customers_labeled.csv", data_dir / "customers_to_score.csv"
    synthetic_customers(5000, seed=7).to_csv(training, index=False)
    synthetic_customers(1000, seed=11, labeled=False).to_csv(upload, index=False)
    step(f"training on {training.name} (5000 synthetic customers)")
    cli.main(
        [
            "model",
            "train",
            "--data",
            str(training),
            "--target",
            "Churn",
            "--id",
            "customer_id",
            "--name",
            "churn",
        ]
    )
    cli.main(["model", "promote", "churn"])
    step(f"uploading {upload.name} and waiting for the result")
    out = data_dir / "results.csv"
    upload_started = time.monotonic()
    if cli.main(["upload", str(upload), "--account", DEMO_ACCOUNT, "--wait", "-o", str(out)]) != 0:
        raise SystemExit("the demo upload did not complete")
    step(f"upload -> COMPLETED in {time.monotonic() - upload_started:.1f}s")
    counts = pd.read_csv(out)["churn_risk"].value_counts()
    print("\nchurn_risk  customers")
    for tier in ("HIGH", "MEDIUM", "LOW"):
        print(f"{tier:<10} {int(counts.get(tier, 0)):>10}")
    key = demo_key(settings)
    print(
        f"\nweb app: {stack.app_url(settings)} (`retainwise stack up` serves it again)\n"
        f"sign in as {DEMO_ACCOUNT} with the API key {key}"
    )
    return out.resolve()


def demo_key(settings: Settings) -> str:
    """A fresh key for the demo account (created on the first demo): keys are shown only once."""
    from retainwise.adapters import accounts
    from retainwise.adapters.db import make_engine

    engine = make_engine(settings.db_url)
    try:
        if accounts.get_account(engine, DEMO_ACCOUNT) is None:
            accounts.create_account(engine, DEMO_ACCOUNT)
        return accounts.create_key(engine, DEMO_ACCOUNT)["api_key"]
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
