"""Each customer over time: its score in every completed upload, and its latest explanation.

While an upload is scored, each chunk's scores are kept as one row of `upload_scores` (the
chunk's customer_id, churn_probability and churn_risk as a compressed Arrow stream: one insert
instead of a row per customer), which is what the account's next upload reads as "previous".
Once the upload is COMPLETED they are copied into `customer_scores`, a row per (upload,
customer) dated at its completed_at, written in bulk (COPY on PostgreSQL, executemany
elsewhere), for each customer's history; `customer_explanations` keeps per account and customer
the newest exact explanation (an older upload never overwrites a newer one). Every read is scoped
by account: another account's customer answers exactly like a missing one (None). Functions take
an Engine; nothing connects at import.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from models.changes import Earlier
from models.explain import Explanation
from retainwise.adapters.db import Status, metadata, predictions

customer_scores = sa.Table(
    "customer_scores",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("churn_probability", sa.Float, nullable=False),
    sa.Column("churn_risk", sa.String(8), nullable=False),
    sa.Index("ix_customer_scores_account_customer_id", "account", "customer_id", "completed_at"),
)

customer_explanations = sa.Table(
    "customer_explanations",
    metadata,
    sa.Column("account", sa.String(255), primary_key=True),
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("prediction_id", sa.String(36), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("base_value", sa.Float, nullable=False),
    sa.Column("margin", sa.Float, nullable=False),
    sa.Column("contributions", sa.Text, nullable=False),  # [{feature, value, contribution}, ...]
)

upload_scores = sa.Table(
    "upload_scores",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True),  # the chunk's place in the upload, from 0
    sa.Column("scores", sa.LargeBinary, nullable=False),  # an Arrow IPC stream, zstd
)

EARLIER_BLOCK = 5_000  # customer ids per read of their earlier explanations (bound parameters)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"  # what COPY reads back as the same instant


@dataclass(frozen=True)
class UploadScored:
    """Which upload the rows belong to."""

    account: str
    prediction_id: str
    model_name: str
    model_version: str
    completed_at: datetime


@dataclass(frozen=True)
class CustomerScore:
    prediction_id: str
    completed_at: datetime
    churn_probability: float
    churn_risk: str
    model_version: str


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: str | float | None
    contribution: float


@dataclass(frozen=True)
class CustomerExplanation:
    prediction_id: str
    model_version: str
    base_value: float
    margin: float
    contributions: list[Contribution]


@dataclass(frozen=True)
class CustomerRecord:
    customer_id: str
    history: list[CustomerScore]  # newest first
    explanation: CustomerExplanation | None


def forget_upload(engine: Engine, prediction_id: str) -> None:
    """Drop an upload's rows and kept chunks, so a rerun of the same upload writes them afresh."""
    with engine.begin() as conn:
        conn.execute(upload_scores.delete().where(upload_scores.c.prediction_id == prediction_id))
        conn.execute(
            customer_scores.delete().where(customer_scores.c.prediction_id == prediction_id)
        )


def keep_scores(engine: Engine, prediction_id: str, part: int, scored: pd.DataFrame) -> int:
    """Keep one chunk of scored rows (customer_id, churn_probability, churn_risk) as one row,
    compressed: what the account's next upload reads back, and customer_scores once COMPLETED."""
    table = pa.table(
        {
            "customer_id": pa.array(scored["customer_id"].astype(str).to_numpy(), pa.string()),
            "churn_probability": pa.array(scored["churn_probability"].to_numpy("float64")),
            "churn_risk": pa.array(scored["churn_risk"].astype(str).to_numpy(), pa.string()),
        }
    )
    with engine.begin() as conn:
        conn.execute(
            upload_scores.insert().values(
                prediction_id=prediction_id, part=part, scores=_packed(table)
            )
        )
    return len(table)


def _packed(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _unpacked(data: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()


def kept_scores(engine: Engine, prediction_id: str) -> Iterator[pa.Table]:
    """The upload's kept chunks in order, one at a time (customer_id, churn_probability,
    churn_risk)."""
    with engine.connect() as conn:
        parts = conn.execute(
            sa.select(upload_scores.c.part)
            .where(upload_scores.c.prediction_id == prediction_id)
            .order_by(upload_scores.c.part)
        ).scalars()
        numbers = list(parts)
    for part in numbers:  # a chunk's bytes at a time, not the whole upload's
        with engine.connect() as conn:
            data = conn.execute(
                sa.select(upload_scores.c.scores).where(
                    upload_scores.c.prediction_id == prediction_id, upload_scores.c.part == part
                )
            ).scalar_one()
        yield _unpacked(data)


def completed_at(engine: Engine, prediction_id: str) -> datetime | None:
    """When the upload was COMPLETED (None if it is not)."""
    with engine.connect() as conn:
        moment = conn.execute(
            sa.select(predictions.c.completed_at).where(
                predictions.c.id == prediction_id, predictions.c.status == Status.COMPLETED.value
            )
        ).scalar()
    return None if moment is None else _utc(moment)


def store_kept_scores(engine: Engine, upload: UploadScored) -> Iterator[pa.Table]:
    """Copy the upload's kept chunks into customer_scores at `upload.completed_at` (its earlier
    rows dropped first, so a retry stores each once), a chunk per transaction; yields each chunk
    once stored."""
    with engine.begin() as conn:
        conn.execute(
            customer_scores.delete().where(customer_scores.c.prediction_id == upload.prediction_id)
        )
    for table in kept_scores(engine, upload.prediction_id):
        with engine.begin() as conn:
            _write_scores(conn, upload, table.to_pandas())
        yield table


def date_upload(engine: Engine, prediction_id: str) -> datetime | None:
    """The upload's stored scores dated at its completed_at (the time COMPLETED was committed);
    None if not completed. The flow no longer needs it (the scores are stored after COMPLETED, at
    that time); benchmarks/history_cost.py still measures it."""
    with engine.begin() as conn:
        moment = conn.execute(
            sa.select(predictions.c.completed_at).where(
                predictions.c.id == prediction_id, predictions.c.status == Status.COMPLETED.value
            )
        ).scalar()
        if moment is None:
            return None
        conn.execute(
            customer_scores.update()
            .where(customer_scores.c.prediction_id == prediction_id)
            .values(completed_at=moment)
        )
    return _utc(moment)


def record_scores(engine: Engine, upload: UploadScored, scored: pd.DataFrame) -> int:
    """Store one chunk of scored rows (customer_id, churn_probability, churn_risk); an id seen
    twice in the chunk keeps its last row."""
    with engine.begin() as conn:
        return _write_scores(conn, upload, scored)


def _write_scores(conn: Connection, upload: UploadScored, scored: pd.DataFrame) -> int:
    rows = scored.drop_duplicates("customer_id", keep="last")
    values = {
        "prediction_id": upload.prediction_id,
        "customer_id": rows["customer_id"].astype(str).tolist(),
        "account": upload.account,
        "model_name": upload.model_name,
        "model_version": str(upload.model_version),
        "completed_at": upload.completed_at,
        "churn_probability": rows["churn_probability"].astype("float64").tolist(),
        "churn_risk": rows["churn_risk"].astype(str).tolist(),
    }
    if conn.dialect.name == "postgresql":
        _copy(conn, "customer_scores", values, len(rows))
    else:
        _insert_many(conn, customer_scores.insert(), customer_scores, values, len(rows))
    return len(rows)


def _insert_many(
    conn: Connection, statement: Any, table: sa.Table, values: dict[str, Any], rows: int
) -> None:
    """One DBAPI executemany of plain tuples (sqlite3 stores 100k rows in ~0.2 s): SQLAlchemy's
    executemany of dicts cost ~25 us a row. A value that is not a list is every row's."""
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(values))
    if compiled.positiontup is None:
        raise TypeError(f"{conn.dialect.name} does not take positional parameters")
    columns: list[Iterable[Any]] = []
    for name in compiled.positiontup:
        bind = table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        value = values[name]
        if isinstance(value, list):
            columns.append(list(map(bind, value)) if bind else value)
        else:
            columns.append(itertools.repeat(bind(value) if bind else value, rows))
    conn.exec_driver_sql(str(compiled), list(zip(*columns, strict=True)))


def _psycopg(conn: Connection) -> Any:
    """The psycopg connection under `conn`, for COPY (SQLAlchemy types it as possibly gone)."""
    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("the database connection was closed")
    return driver


def _copy(conn: Connection, table: str, values: dict[str, Any], rows: int) -> None:
    """COPY the rows as CSV text written by Arrow (pandas' to_csv cost 25x more CPU); a value
    that is not a list is every row's, a time written once as COPY reads it back."""
    columns = {
        name: pa.array(value)
        if isinstance(value, list)
        else pa.repeat(value.strftime(TIME_FORMAT) if isinstance(value, datetime) else value, rows)
        for name, value in values.items()
    }
    text = io.BytesIO()
    pa_csv.write_csv(pa.table(columns), text, pa_csv.WriteOptions(include_header=False))
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    with _psycopg(conn).cursor().copy(statement) as copy:
        copy.write(text.getbuffer())


def record_explanations(
    engine: Engine,
    upload: UploadScored,
    customer_ids: pd.Series,
    explanation: Explanation,
    X: pd.DataFrame,
) -> int:
    """Keep each explained customer's explanation unless a newer upload's is stored already; a
    customer explained twice keeps its last row."""
    ids = customer_ids.astype(str).to_numpy()
    last = ~pd.Series(ids).duplicated(keep="last").to_numpy()
    if not last.any():
        return 0
    values = {
        "account": upload.account,
        "customer_id": ids[last].tolist(),
        "prediction_id": upload.prediction_id,
        "model_version": str(upload.model_version),
        "completed_at": upload.completed_at,
        "base_value": explanation.base[last].astype("float64").tolist(),
        "margin": explanation.margin[last].astype("float64").tolist(),
        "contributions": contributions_json(explanation, X, last),
    }
    rows = int(last.sum())
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            _copy_upsert(conn, values, rows)
        else:
            _insert_many(conn, _upsert(conn), customer_explanations, values, rows)
    return rows


def _copy_upsert(conn: Connection, values: dict[str, Any], rows: int) -> None:
    """COPY into a temporary table, then one upsert from it: a row-by-row upsert of 22k
    explanations took 18 s under load."""
    names = ", ".join(values)
    changed = ", ".join(f"{c} = EXCLUDED.{c}" for c in list(values)[2:])
    _psycopg(conn).execute(
        "CREATE TEMPORARY TABLE incoming_explanations (LIKE customer_explanations) ON COMMIT DROP"
    )
    _copy(conn, "incoming_explanations", values, rows)
    _psycopg(conn).execute(
        f"INSERT INTO customer_explanations ({names}) "
        f"SELECT {names} FROM incoming_explanations "
        f"ON CONFLICT (account, customer_id) DO UPDATE SET {changed} "
        "WHERE customer_explanations.completed_at <= EXCLUDED.completed_at"
    )


def contributions_json(explanation: Explanation, X: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """json.dumps([{feature, value, contribution}, ...]) of each selected row (a boolean mask),
    the same values as json.loads reads them; built by Arrow a column at a time (Python's float
    repr and string joins per cell cost ~1 CPU s per 20k explained rows)."""
    return contributions_text(explanation, X, rows).to_pylist()


def contributions_text(explanation: Explanation, X: pd.DataFrame, rows: np.ndarray) -> pa.Array:
    """`contributions_json`'s strings as an Arrow array. The numbers of every column are written
    by one Arrow call each (all the contributions, all the float cells), then sliced per column:
    a call per column was a fixed cost of ~3 ms per 20 features that a small upload paid whole."""
    count = int(rows.sum())
    if not explanation.features or not count:
        return pa.array(["[]"] * count, pa.string())
    selected = X.loc[rows]
    shares = _sliced(_json_floats(explanation.contributions[rows].ravel(order="F")), count)
    cells = _json_columns(selected, explanation.features)
    pieces: list[Any] = []
    for j, name in enumerate(explanation.features):
        opening = ("[" if j == 0 else ", ") + '{"feature": ' + json.dumps(name) + ', "value": '
        pieces += [opening, cells[name], ', "contribution": ', shares[j], "}"]
    pieces.append("]")
    return pc.binary_join_element_wise(*pieces, "")


def _sliced(text: pa.Array, rows: int) -> list[pa.Array]:
    """Column after column of `rows` cells each (a column-major matrix written at once)."""
    return [text.slice(start, rows) for start in range(0, len(text), rows)]


def _json_columns(X: pd.DataFrame, names: list[str]) -> dict[str, pa.Array]:
    """`_json_cells` of each named column; the float columns' numbers written at once."""
    floats = [name for name in names if pd.api.types.is_float_dtype(X[name].dtype)]
    cells = {name: _json_cells(X[name]) for name in names if name not in floats}
    if floats:
        numbers = np.column_stack([X[name].to_numpy("float64") for name in floats])
        texts = _json_numbers(numbers.ravel(order="F"))
        cells.update(zip(floats, _sliced(texts, len(X)), strict=True))
    return cells


def _json_floats(numbers: np.ndarray) -> pa.Array:
    """Each number as JSON that reads back as the same float: Arrow's shortest round-trip
    digits, with ".0" where they would read back as an int; NaN and infinities as json.dumps
    writes them."""
    values = np.asarray(numbers, dtype="float64")
    text = pc.cast(pa.array(values), pa.string())
    integral = pc.invert(pc.match_substring_regex(text, "[.en]"))  # "2", "-0", not "1e+16"
    text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    odd = ~np.isfinite(values)
    if not odd.any():
        return text
    spelled = text.to_numpy(zero_copy_only=False)
    spelled[odd] = [json.dumps(float(v)) for v in values[odd]]
    return pa.array(spelled, pa.string())


def _json_numbers(numbers: np.ndarray) -> pa.Array:
    """`_json_floats` of float cells, a missing (NaN) cell as null."""
    missing = np.isnan(numbers)
    spelled = _json_floats(np.where(missing, 0.0, numbers))  # null in its place
    return pc.if_else(pa.array(missing), "null", spelled)


def _json_cells(column: pd.Series) -> pa.Array:
    """json.dumps of each cell, a missing cell as null: numbers by Arrow, anything else once per
    distinct value."""
    if pd.api.types.is_float_dtype(column.dtype):
        return _json_numbers(column.to_numpy("float64"))
    codes, distinct = pd.factorize(column, use_na_sentinel=True)
    words = pa.array([json.dumps(_plain(value)) for value in distinct] + ["null"], pa.string())
    return words.take(np.where(codes < 0, len(distinct), codes))  # code -1 takes null


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _upsert(conn: Connection):
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
    statement = insert(customer_explanations)
    newer = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["account", "customer_id"],
        set_={
            c: newer[c]
            for c in (
                "prediction_id",
                "model_version",
                "completed_at",
                "base_value",
                "margin",
                "contributions",
            )
        },
        where=customer_explanations.c.completed_at <= newer.completed_at,
    )


def customer(engine: Engine, account: str, customer_id: str) -> CustomerRecord | None:
    """The account's history for the customer (newest first) and its latest explanation."""
    with engine.connect() as conn:
        history = [
            CustomerScore(row[0], _utc(row[1]), *row[2:])
            for row in conn.execute(
                sa.select(
                    customer_scores.c.prediction_id,
                    customer_scores.c.completed_at,
                    customer_scores.c.churn_probability,
                    customer_scores.c.churn_risk,
                    customer_scores.c.model_version,
                )
                .where(
                    customer_scores.c.account == account,
                    customer_scores.c.customer_id == customer_id,
                )
                .order_by(customer_scores.c.completed_at.desc())
            )
        ]
        if not history:
            return None
        stored = conn.execute(
            sa.select(customer_explanations).where(
                customer_explanations.c.account == account,
                customer_explanations.c.customer_id == customer_id,
            )
        ).first()
    return CustomerRecord(customer_id, history, _explanation(stored) if stored else None)


def earlier_explanations(
    engine: Engine,
    account: str,
    customer_ids: Iterable[str],
    before: str | None = None,
    block: int = EARLIER_BLOCK,
) -> Earlier:
    """The account's stored explanation of each customer (the newest: customer_explanations),
    other than upload `before`'s own, as each feature's value and contribution then: one read
    (PostgreSQL: the ids as one array), or one per `block` of distinct ids (SQLite's bound
    parameters). Another account's customer is missing, like one never explained."""
    wanted = list(dict.fromkeys(str(i) for i in customer_ids))
    found: list[tuple[str, str]] = []
    table = customer_explanations.c
    with engine.connect() as conn:
        array = conn.dialect.name == "postgresql"  # one bound array: psycopg parses no long IN
        step = max(len(wanted), 1) if array else block
        for first in range(0, len(wanted), step):
            some = wanted[first : first + step]
            matches = (
                table.customer_id == sa.any_(sa.bindparam("ids", some, postgresql.ARRAY(sa.Text)))
                if array
                else table.customer_id.in_(some)
            )
            query = sa.select(table.customer_id, table.contributions).where(
                table.account == account, matches
            )
            if before is not None:
                query = query.where(table.prediction_id != before)
            found += [(row[0], row[1]) for row in conn.execute(query)]
    return earlier_of([i for i, _ in found], [text for _, text in found])


def earlier_of(ids: list[str], texts: list[str]) -> Earlier:
    """Earlier from stored contributions JSON (contributions_json), a row per id, over the first
    row's features (a feature a row lacks: not explained then). Parsed at once by orjson (json
    for NaN or Infinity, which only json reads); the rows taken a column at a time when they all
    list the same features in the same order, as one model's explanations do."""
    if not texts:
        return Earlier.none(ids, [])
    joined = "[" + ",".join(texts) + "]"
    try:
        parsed = orjson.loads(joined)
    except orjson.JSONDecodeError:
        parsed = json.loads(joined)
    features = [item["feature"] for item in parsed[0]]
    width = len(features)
    if width and all(len(row) == width for row in parsed):
        items = [item for row in parsed for item in row]
        names = np.array([item["feature"] for item in items], dtype=object)
        if (names.reshape(-1, width) == np.array(features, dtype=object)).all():
            values = np.empty(len(items), dtype=object)
            values[:] = [item["value"] for item in items]
            shares = np.array([item["contribution"] for item in items], dtype=np.float64)
            grid = values.reshape(-1, width)
            return Earlier(
                ids,
                features,
                {name: grid[:, j] for j, name in enumerate(features)},
                shares.reshape(-1, width),
            )
    return _earlier_by_name(ids, parsed, features)


def _earlier_by_name(ids: list[str], parsed: list[list[dict]], features: list[str]) -> Earlier:
    """Rows listing different features: each item put in its feature's place."""
    earlier = Earlier.none(ids, features)
    at = {name: j for j, name in enumerate(features)}
    for row, items in enumerate(parsed):
        for item in items:
            j = at.get(item["feature"])
            if j is not None:
                earlier.values[item["feature"]][row] = item["value"]
                earlier.contributions[row, j] = item["contribution"]
    return earlier


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive times; every time stored here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _explanation(row) -> CustomerExplanation:
    return CustomerExplanation(
        row.prediction_id,
        row.model_version,
        row.base_value,
        row.margin,
        [Contribution(**item) for item in json.loads(row.contributions)],
    )


def previous_scores(engine: Engine, account: str, model_name: str, before: str) -> pa.Table | None:
    """customer_id, probability of the account's latest completed upload for the model other than
    `before` (the upload being scored) with kept or stored scores; None when there is none. Its
    kept chunks when it has them (they exist at its COMPLETED; customer_scores may come later),
    else its customer_scores rows (an upload kept before upload_scores existed)."""
    kept = sa.exists().where(upload_scores.c.prediction_id == predictions.c.id)
    stored = sa.exists().where(customer_scores.c.prediction_id == predictions.c.id)
    with engine.connect() as conn:
        previous = conn.execute(
            sa.select(predictions.c.id)
            .where(
                predictions.c.account == account,
                predictions.c.model_name == model_name,
                predictions.c.status == Status.COMPLETED.value,
                predictions.c.id != before,
                sa.or_(kept, stored),
            )
            .order_by(predictions.c.completed_at.desc())
            .limit(1)
        ).scalar()
        if previous is None:
            return None
    parts = [
        pa.table({"customer_id": t["customer_id"], "probability": t["churn_probability"]})
        for t in kept_scores(engine, previous)
    ]
    if parts:
        return pa.concat_tables(parts)
    return _stored_scores(engine, previous)


def _stored_scores(engine: Engine, prediction_id: str) -> pa.Table:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(customer_scores.c.customer_id, customer_scores.c.churn_probability).where(
                customer_scores.c.prediction_id == prediction_id
            )
        ).all()
    ids, probabilities = zip(*rows, strict=True) if rows else ((), ())
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.string()),
            "probability": pa.array(probabilities, pa.float64()),
        }
    )
