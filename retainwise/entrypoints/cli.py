"""`retainwise`: upload files, follow them, train and promote models, run the local stack.

Each command imports what it needs inside its function, so `--help` and quick commands never
load pydantic, MLflow, Prefect, GX or scikit-learn they do not use (tests/retainwise/entrypoints/
test_cli_imports.py keeps this).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retainwise.config.settings import Settings


def _resources(args):
    """The command's Resources, from the Settings main read (one per command, closed at exit);
    flows run in this process use it too."""
    from retainwise.adapters.resources import Resources

    return Resources.of_process(args.settings)


def _print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, default=str))


def cmd_upload(args) -> int:
    from retainwise.adapters import db
    from retainwise.entrypoints import service

    try:
        carry = db.carry_names(args.carry or "")
    except db.CarryRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = _resources(args)
    path = Path(args.file)
    prediction_id = service.submit_upload(
        env,
        path.read_bytes(),
        filename=path.name,
        account=args.account or env.settings.default_account,
        model_name=args.model or env.settings.default_model,
        carry=carry,
    )
    print(prediction_id)
    if not args.wait:
        return 0
    row = service.wait_for_final(env, prediction_id, timeout=args.timeout)
    if row.status is not db.Status.COMPLETED:
        print(f"FAILED: {row.error}", file=sys.stderr)
        return 1
    out = Path(args.output or env.settings.home_dir / "results" / f"{prediction_id}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(service.download_results(env, prediction_id))
    print(out)
    return 0


def cmd_status(args) -> int:
    from retainwise.adapters import db

    row = db.get_prediction(_resources(args).engine, args.id)
    if row is None:
        print(f"no upload with id {args.id}", file=sys.stderr)
        return 2
    _print_json(row.to_json())
    return 0


def cmd_download(args) -> int:
    from retainwise.entrypoints import service

    try:
        data = service.download_results(_resources(args), args.id)
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return 1
    out = Path(args.output or f"{args.id}.csv")
    out.write_bytes(data)
    print(out)
    return 0


def cmd_report(args) -> int:
    """The upload's HTML data-quality report, from the key derived from its prediction id."""
    from botocore.exceptions import ClientError

    from retainwise.adapters import aws, db
    from retainwise.uploads.output import result_keys

    env = _resources(args)
    row = db.get_prediction(env.engine, args.id)
    if row is None:
        print(f"no upload with id {args.id}", file=sys.stderr)
        return 2
    try:
        key = result_keys(row.account, args.id).report_html
        data = aws.get_bytes(env.s3, env.settings.bucket, key)
    except ClientError:  # NoSuchKey: the upload failed before a report could be built
        print(
            f"upload {args.id} has no report ({row.status}"
            + (f": {row.error})" if row.error else ")"),
            file=sys.stderr,
        )
        return 1
    out = Path(args.output or f"{args.id}.report.html")
    out.write_bytes(data)
    print(out)
    return 0


def cmd_score(args) -> int:
    """Local scoring for data scientists: the flow's own steps on a local file, no queue; a
    large file streams through in chunks, in bounded memory, as it does in the flow."""
    from dataclasses import replace

    from retainwise.adapters import db
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.config import errors
    from retainwise.config.errors import UploadRejected
    from retainwise.uploads.files import LocalFile, LocalSinks
    from retainwise.uploads.policy import ScoringPolicy
    from retainwise.uploads.scoring import Output, score_object

    settings = args.settings
    summary: dict[str, Any] = {
        "status": "FAILED",
        "rows_total": 0,
        "rows_scored": 0,
        "rows_rejected": 0,
        "model_version": None,
        "error": None,
    }
    out = Path(args.output)
    sinks = LocalSinks(
        {Output.RESULTS: out, Output.REJECTS: out.with_name(out.stem + ".rejects.csv")}
    )
    try:
        model = registry.load_champion(args.model or settings.default_model, settings)
        summary["model_version"] = model.version
        source = LocalFile(Path(args.file))
        carry = db.carry_names(args.carry or "")
        policy = replace(ScoringPolicy.from_settings(settings), carry=carry)
        report = score_object(source, model, policy, sinks).report
        if report["error"]:
            raise UploadRejected(report["error"])
        summary.update(
            status="COMPLETED",
            **{key: report[key] for key in ("rows_total", "rows_scored", "rows_rejected")},
            risk_counts=report["risk_counts"],
            output=str(out),
        )
    except (UploadRejected, errors.NoChampion, OSError, db.CarryRefused) as exc:
        summary["error"] = str(exc)
    _print_json(summary)
    return 0 if summary["status"] == "COMPLETED" else 1


def cmd_outcomes(args) -> int:
    """What really happened to an upload's customers; one JSON line: matched, unmatched counts."""
    from retainwise.config.errors import UploadRejected
    from retainwise.entrypoints import service

    env = _resources(args)
    try:
        summary = service.record_outcomes(
            env,
            args.prediction,
            args.account or env.settings.default_account,
            Path(args.file).read_bytes(),
        )
    except (LookupError, UploadRejected, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary["unmatched"] or summary["invalid"] or summary["duplicate"]:
        print(
            f"note: {summary['unmatched']} id(s) match no scored customer, {summary['invalid']} "
            f"invalid and {summary['duplicate']} duplicate row(s) were not stored",
            file=sys.stderr,
        )
    summary["monitor_run"] = _start_monitor(summary["model"])
    _print_json(summary)
    return 0


def _start_monitor(model: str) -> str | None:
    """Refresh the figures after new outcomes: a monitor flow run when a Prefect server answers."""
    from retainwise.modelops.training import prefect_server_answers

    if not prefect_server_answers():
        return None
    from prefect.exceptions import ObjectNotFound

    from retainwise.entrypoints import follow

    try:
        return follow.start_run("monitor/monitor", {"name": model})
    except ObjectNotFound:
        print(
            "note: no monitor deployment registered; run `retainwise model monitor` to see the "
            "figures",
            file=sys.stderr,
        )
        return None


def cmd_trigger(args) -> int:
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.runtime.trigger import (
        champion_versions,
        deployment_starter,
        routed_by_size,
        run_trigger,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    env = _resources(args)
    stop = threading.Event()
    model_version = champion_versions(lambda name: registry.champion_version(name, env.settings))
    starters = {
        name: deployment_starter(
            name,
            env.settings.trigger_create_timeout,
            account_limit=env.settings.max_active_uploads,
            model_version=model_version,
        )
        for name in (env.settings.deployment_name, env.settings.large_deployment_name)
    }
    try:
        run_trigger(
            env, routed_by_size(env, starters), stop, concurrency=env.settings.trigger_concurrency
        )
    except KeyboardInterrupt:
        stop.set()
    finally:
        for starter in starters.values():
            starter.close()
    return 0


def cmd_runner(args) -> int:
    from retainwise.runtime import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve.main(
        ["--only", *serve.RUNNER_DEPLOYMENTS, "--processes", str(args.processes)], args.settings
    )
    return 0


def cmd_api(args) -> int:
    import uvicorn

    from retainwise.entrypoints.app import create_app

    uvicorn.run(create_app(_resources(args)), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_stack(args) -> int:
    from retainwise.local import stack

    settings = args.settings
    if args.action == "up":
        env = stack.up(settings)
        print(
            f"stack up: S3/SQS {env['AWS_ENDPOINT_URL']}, Prefect UI "
            f"{env['PREFECT_API_URL'].removesuffix('/api')}; state in {settings.home_dir}"
        )
        print(f"web app and API: {stack.app_url(settings)} (API docs at /docs)")
    elif args.action == "down":
        print("stopped:", ", ".join(stack.down(settings)) or "nothing was running")
    else:
        _print_json(stack.status(settings))
    return 0


def cmd_migrate(args) -> int:
    if args.deployment:
        return migrate_by_deployment(args.deployment, args.revision, args.timeout)
    from flows.migrate import migrate

    _resources(args)  # the flow's, in this process
    print(f"database at revision {migrate(args.revision)}")
    return 0


def migrate_by_deployment(deployment: str, revision: str, timeout: float) -> int:
    """Run the migrate deployment where it lives (ECS in production) and wait for its end state."""
    from prefect.exceptions import ObjectNotFound

    from retainwise.entrypoints import follow

    try:
        flow_run_id = follow.start_run(deployment, {"revision": revision})
    except ObjectNotFound:
        print(
            f"no deployment named {deployment}; register it first (`prefect deploy --name "
            f"migrate`, or `retainwise stack up` locally)",
            file=sys.stderr,
        )
        return follow.EXIT_FAILED
    print(
        f"started flow run {flow_run_id} of {deployment}; waiting up to {timeout:.0f} s", flush=True
    )
    outcome = follow.follow(flow_run_id, timeout, say=lambda text: print(text, flush=True))
    if outcome.exit_code == follow.EXIT_COMPLETED:
        print(f"migration completed (flow run {flow_run_id})")
    elif outcome.exit_code == follow.EXIT_FAILED:
        print(
            f"migration {outcome.state} (flow run {flow_run_id}); its last log lines:",
            file=sys.stderr,
        )
        for line in outcome.lines:
            print(f"  {line}", file=sys.stderr)
    return outcome.exit_code


def cmd_dlq(args) -> int:
    from retainwise.adapters import aws

    queue = _resources(args).queue
    if args.action == "list":
        for message in aws.list_dead_letters(queue, args.max):
            _print_json(message.to_json())
        return 0
    moved = aws.redrive_dead_letters(queue, set(args.id) if args.id else None)
    print(f"moved {len(moved)} message(s) back to {queue.url}")
    return 0


def cmd_model(args) -> int:
    if args.action == "train":  # imports nothing it does not need before fitting starts
        return _model_train(args)
    settings = args.settings
    if args.action == "monitor":
        return _model_monitor(args, settings)
    if args.action == "compare":
        return _model_compare(args, settings)
    from retainwise.adapters import mlflow_registry as registry

    if args.action == "list":
        for row in registry.list_versions(args.name, settings):
            _print_json(row.to_json())
        return 0
    from retainwise.adapters.db import make_engine
    from retainwise.adapters.promotions import PromotionsTableMissing
    from retainwise.config import errors
    from retainwise.modelops import promotion

    engine = make_engine(settings.db_url)
    try:
        if args.action == "promote":
            outcome = promotion.promote_version(
                args.name,
                settings,
                engine,
                version=args.version,
                force=args.force,
                reason=args.reason,
            )
        else:
            outcome = promotion.rollback(args.name, settings, engine, reason=args.reason)
    except errors.PromotionRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        _print_json({"status": "refused", "message": str(exc), **exc.details})
        return 1
    except (PromotionsTableMissing, errors.NoChampion, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    _print_json(outcome.to_json())
    return 0


def _model_monitor(args, settings: Settings) -> int:
    """Estimated and realised performance per upload, drift, alerts; one JSON line last."""
    from retainwise.adapters.db import make_engine
    from retainwise.modelops.monitoring import model_figures, terminal_table

    engine = make_engine(settings.db_url)
    try:
        figures = model_figures(engine, settings, args.name, args.account)
    finally:
        engine.dispose()
    print(terminal_table(figures))
    _print_json(figures.to_json())
    return 0


def _model_compare(args, settings: Settings) -> int:
    """Champion beside challenger on the holdout and on every upload with outcomes; JSON last."""
    from retainwise.adapters.resources import Resources
    from retainwise.config.errors import NoChampion, PromotionRefused
    from retainwise.modelops.compare import compare_models, terminal_table

    env = Resources(settings)
    try:
        figures = compare_models(env.engine, env.s3, settings, args.name, args.account)
    except (NoChampion, PromotionRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        env.engine.dispose()
    print(terminal_table(figures))
    _print_json(figures.to_json())
    return 0


def _model_train(args) -> int:
    """A flow run when a Prefect server answers; else the same steps in-process (MLflow only)."""
    from models.training import TrainingError
    from retainwise.modelops.training import (
        TrainingSummary,
        prefect_server_answers,
        train_in_process,
    )

    def in_process(data, target, id_column, name, positive, allow_columns) -> TrainingSummary:
        return train_in_process(
            data,
            target,
            id_column,
            name,
            positive,
            allow_columns,
            settings=args.settings,
            say=lambda text: print(f"note: {text}", file=sys.stderr, flush=True),
        )

    run: Any = in_process
    if prefect_server_answers():
        from flows.train_model import train_model

        _resources(args)  # the flow's, in this process
        run = train_model

    try:
        trained = run(args.data, args.target, args.id, args.name, args.positive, args.allow_column)
    except (TrainingError, OSError) as exc:
        print(f"error: cannot train on {args.data}: {exc}", file=sys.stderr)
        return 2
    summary = trained.to_json()
    for note in summary.pop("notes", []):
        print(f"note: {note}", file=sys.stderr)
    _print_json(summary)
    return 0


def cmd_account(args) -> int:
    """Operators manage customer accounts and keys; a key is printed once, at creation."""
    import dataclasses

    from retainwise.adapters import accounts

    def create(engine):
        accounts.create_account(engine, args.name, allowed_models=args.models)
        return [accounts.create_key(engine, args.name)]

    def changed(done: bool, otherwise: str):
        if not done:
            raise accounts.AccountError(otherwise)
        return []

    actions = {
        "create": create,
        "list": lambda e: [a.to_json() for a in accounts.list_accounts(e)],
        "disable": lambda e: changed(
            accounts.disable_account(e, args.name), f"no enabled account {args.name}"
        ),
        "columns": lambda e: [
            accounts.set_columns(e, args.name, args.value_column, _names(args.carry)).to_json()
        ],
        "key create": lambda e: [accounts.create_key(e, args.name)],
        "key list": lambda e: [dataclasses.asdict(k) for k in accounts.list_keys(e, args.name)],
        "key revoke": lambda e: changed(
            accounts.revoke_key(e, args.key_id), f"no live key {args.key_id}"
        ),
    }
    engine = _resources(args).engine
    try:
        for row in actions[
            " ".join(filter(None, [args.action, getattr(args, "key_action", None)]))
        ](engine):
            _print_json(row)
    except accounts.AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


def _names(typed: str | None) -> tuple[str, ...] | None:
    """A comma-separated option as names; None when the option was not given."""
    from retainwise.adapters.db import split_names

    return None if typed is None else split_names(typed)


def cmd_webhook(args) -> int:
    """One JSON line: the secret once on `set`, the last 50 deliveries on `show`."""
    from retainwise.entrypoints import webhooks

    env = _resources(args)
    try:
        _print_json(
            webhooks.command(env, args.webhook_action, args.name, getattr(args, "url", None))
        )
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        env.engine.dispose()
    return 0


CARRY_HELP = (
    "input columns copied into the results after the scored ones (up to 20; "
    "default: the account's, `retainwise account columns`)"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="retainwise", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upload", help="upload a CSV for scoring; prints the prediction id")
    up.add_argument("file")
    up.add_argument("--model")
    up.add_argument("--account")
    up.add_argument("--wait", action="store_true", help="wait, download, print the results path")
    up.add_argument("--timeout", type=float, default=300)
    up.add_argument("-o", "--output")
    up.add_argument("--carry", metavar="COL1,COL2", help=CARRY_HELP)
    up.set_defaults(run=cmd_upload)

    st = sub.add_parser("status", help="an upload's status as JSON")
    st.add_argument("id")
    st.set_defaults(run=cmd_status)

    dl = sub.add_parser("download", help="download an upload's results CSV")
    dl.add_argument("id")
    dl.add_argument("-o", "--output")
    dl.set_defaults(run=cmd_download)

    rp = sub.add_parser("report", help="download an upload's HTML data-quality report")
    rp.add_argument("id")
    rp.add_argument("-o", "--output")
    rp.set_defaults(run=cmd_report)

    sc = sub.add_parser("score", help="score a local file with the champion, no queue")
    sc.add_argument("file")
    sc.add_argument("-o", "--output", required=True)
    sc.add_argument("--model")
    sc.add_argument("--carry", metavar="COL1,COL2", help=CARRY_HELP)
    sc.set_defaults(run=cmd_score)

    oc = sub.add_parser("outcomes", help="what really happened: churned 1/0 per scored customer")
    osub = oc.add_subparsers(dest="action", required=True)
    ocu = osub.add_parser(
        "upload",
        help="join customer_id, churned[, observed_at] to an upload's "
        "scores; replaces an earlier file for that upload",
    )
    ocu.add_argument("file")
    ocu.add_argument("--prediction", required=True, metavar="ID")
    ocu.add_argument("--account")
    oc.set_defaults(run=cmd_outcomes)

    sub.add_parser("trigger", help="run the SQS trigger (long-running)").set_defaults(
        run=cmd_trigger
    )
    rn = sub.add_parser(
        "runner",
        help="the warm runner: serve score-upload and reap-stale "
        "(long-running; an ECS service in production)",
    )
    rn.add_argument(
        "--processes",
        type=int,
        default=min(os.cpu_count() or 2, 4),
        help="warm worker processes, i.e. uploads scored at once",
    )
    rn.set_defaults(run=cmd_runner)

    api = sub.add_parser("api", help="serve the HTTP upload API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(run=cmd_api)

    sk = sub.add_parser("stack", help="the local stack on loopback")
    sk.add_argument("action", choices=["up", "down", "status"])
    sk.set_defaults(run=cmd_stack)

    mg = sub.add_parser("migrate", help="run the migrate flow (alembic upgrade)")
    mg.add_argument("--revision", default="head")
    mg.add_argument(
        "--deployment",
        nargs="?",
        const="migrate/migrate",
        metavar="NAME",
        help="run the migrate deployment (default migrate/migrate) on its work pool "
        "and follow it to the end; exit 0 only on Completed",
    )
    mg.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="with --deployment: seconds to wait before giving up (exit 2)",
    )
    mg.set_defaults(run=cmd_migrate)

    dq = sub.add_parser("dlq", help="the dead-letter queue: list messages, send them back")
    dsub = dq.add_subparsers(dest="action", required=True)
    dls = dsub.add_parser("list", help="one JSON line per message in the DLQ")
    dls.add_argument("--max", type=int, default=100)
    drd = dsub.add_parser("redrive", help="move messages back to the upload queue")
    drd.add_argument(
        "--id", action="append", help="message id or prediction id (repeatable); default: all"
    )
    dq.set_defaults(run=cmd_dlq)

    ac = sub.add_parser("account", help="customer accounts and their API keys (operators)")
    asub = ac.add_subparsers(dest="action", required=True)
    acc = asub.add_parser("create", help="a new account and its first key, as one JSON line")
    acc.add_argument("name")
    acc.add_argument(
        "--models",
        default="churn",
        help="comma-separated models the account may use (default: churn)",
    )
    asub.add_parser("list", help="one JSON line per account")
    asub.add_parser("disable", help="stop every key of the account").add_argument("name")
    acol = asub.add_parser("columns", help="the account's value column and carried columns")
    acol.add_argument("name")
    acol.add_argument(
        "--value-column",
        metavar="COLUMN",
        help="input column weighing a customer: actions rank by probability x value ('' clears)",
    )
    acol.add_argument(
        "--carry",
        metavar="COL1,COL2",
        help="input columns copied into the results beside the four scored ones ('' clears)",
    )
    ak = asub.add_parser("key", help="create, revoke and list an account's keys")
    aksub = ak.add_subparsers(dest="key_action", required=True)
    aksub.add_parser("create", help="a new key; printed once").add_argument("name")
    aksub.add_parser("revoke", help="stop one key").add_argument("key_id")
    aksub.add_parser("list", help="key ids and dates, never secrets").add_argument("name")
    ac.set_defaults(run=cmd_account)
    aw = asub.add_parser("webhook", help="the account's signed webhook (docs/webhooks.md)")
    awsub = aw.add_subparsers(dest="webhook_action", required=True)
    aws = awsub.add_parser("set", help="send events to URL; prints the signing secret once")
    aws.add_argument("name")
    aws.add_argument("url")
    awsub.add_parser("show", help="the URL and the last 50 deliveries").add_argument("name")
    awsub.add_parser("remove", help="stop sending events").add_argument("name")
    aw.set_defaults(run=cmd_webhook)

    md = sub.add_parser("model", help="train, promote, roll back and list models")
    msub = md.add_subparsers(dest="action", required=True)
    tr = msub.add_parser("train", help="fit on a labeled CSV; the new version is the challenger")
    tr.add_argument("--data", required=True)
    tr.add_argument("--target", required=True)
    tr.add_argument("--id", help="customer id column (default: the 1-based row number)")
    tr.add_argument("--name", default="churn")
    tr.add_argument("--positive", help="the target value that means churn, for text labels")
    tr.add_argument(
        "--allow-column",
        action="append",
        default=[],
        metavar="COLUMN",
        help="keep a column the leakage guard would exclude (repeatable)",
    )
    pr = msub.add_parser("promote", help="make the challenger (or --version) champion, gated")
    pr.add_argument("name")
    pr.add_argument("--version")
    pr.add_argument("--force", action="store_true", help="override the gate (needs --reason)")
    pr.add_argument("--reason")
    rb = msub.add_parser("rollback", help="return to the champion before the current one")
    rb.add_argument("name")
    rb.add_argument("--reason")
    mo = msub.add_parser(
        "monitor",
        help="estimated vs realised performance per upload, drift, alerts; one JSON line last",
    )
    mo.add_argument("name")
    mo.add_argument("--account")
    co = msub.add_parser(
        "compare",
        help="champion beside challenger on the holdout and on "
        "uploads with outcomes; one JSON line last",
    )
    co.add_argument("name")
    co.add_argument("--account")
    ls = msub.add_parser("list", help="versions, aliases and key figures")
    ls.add_argument("name")
    md.set_defaults(run=cmd_model)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # without a Prefect server, flows start a temporary one; on a busy 2-core box it needs > 20 s
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from retainwise.config.errors import MissingSetting
    from retainwise.config.settings import Settings, check_production

    # the command's one Settings, passed down as args.settings; read a second time only when
    # stack.env (written by `stack up`, found under the home) put the local endpoints in the
    # environment
    settings = Settings()
    if args.command != "stack":
        from retainwise.local.stack import load_stack_env

        if load_stack_env(settings):
            settings = Settings()
    args.settings = settings
    try:
        check_production(settings, serves_web=args.command == "api")
    except MissingSetting as exc:
        print(exc, file=sys.stderr)
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
