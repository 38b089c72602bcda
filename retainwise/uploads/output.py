"""What goes back to customers: result and reject tables, made safe to open in a spreadsheet."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ResultKeys:
    results: str
    rejects: str
    report: str  # the JSON summary
    report_html: str
    actions: str  # the contact list (uploads.actions)


def result_keys(account: str, prediction_id: str) -> ResultKeys:
    """Under the account, derived from the prediction id: a rerun overwrites, never duplicates."""
    prefix = f"results/{account}/{prediction_id}"
    return ResultKeys(
        f"{prefix}/results.csv",
        f"{prefix}/rejects.csv",
        f"{prefix}/report.json",
        f"{prefix}/report.html",
        f"{prefix}/actions.csv",
    )


def shadow_key(account: str, prediction_id: str, version: str) -> str:
    """Where a shadow model's results go: beside the customer's, never named by the upload's row."""
    return f"results/{account}/{prediction_id}/shadow-v{version}.csv"


def neutralise_formulas(values: pd.Series) -> pd.Series:
    """Prefix a quote to text a spreadsheet would run as a formula (CSV injection)."""
    risky = _starts_with_formula(values)
    if not risky.any():
        return values
    text = values.astype("object")
    return text.mask(risky, "'" + text[risky].astype(str))


def _starts_with_formula(values: pd.Series) -> np.ndarray:
    """Cells starting with a formula prefix, checked by Arrow kernels (no Python per cell)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text: Python's str methods cope
        starts: np.ndarray = (
            values.astype("object")
            .str.startswith(FORMULA_PREFIXES)
            .fillna(False)
            .to_numpy(dtype=bool)
        )
        return starts
    risky = np.zeros(len(text), dtype=bool)
    for prefix in FORMULA_PREFIXES:
        risky |= pc.fill_null(pc.starts_with(text, prefix), False).to_numpy(zero_copy_only=False)
    return risky


def neutralise_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text column and every header neutralised: rejects echo the customer's cells and
    column names back verbatim."""
    text = [
        c
        for c in frame.columns
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])
    ]
    safe = frame.assign(**{c: neutralise_formulas(frame[c]) for c in text}) if text else frame
    names = neutralise_formulas(pd.Series([str(c) for c in frame.columns], dtype=object))
    return safe.set_axis(names.tolist(), axis="columns") if len(frame.columns) else safe


def neutralise_results(results: pd.DataFrame) -> pd.DataFrame:
    """The result columns that echo customer text (ids, reasons) neutralised; the rest is ours."""
    text = [c for c in ("customer_id", "top_reasons") if c in results.columns]
    return results.assign(**{c: neutralise_formulas(results[c]) for c in text})


def to_csv_bytes(frame: pd.DataFrame, header: bool = True) -> bytes:
    """CSV through Arrow's writer, several times faster than DataFrame.to_csv: floats to 6
    decimals, booleans as True/False, a cell quoted only when it holds a comma, quote or newline."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa.table(
        {
            str(name): pa.array(_arrow_values(column), from_pandas=True)
            for name, column in frame.items()
        }
    )
    head = (
        (",".join(_quoted(str(name)) for name in frame.columns) + "\n").encode() if header else b""
    )
    if not len(frame):
        return head
    out = io.BytesIO()
    try:
        pa_csv.write_csv(
            table, out, pa_csv.WriteOptions(include_header=False, quoting_style="none")
        )
    except pa.ArrowInvalid:  # some value needs quoting: quote every text cell instead
        out = io.BytesIO()
        pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=False))
    return head + out.getvalue()


def _arrow_values(column: pd.Series) -> Any:
    import pyarrow as pa

    values = column.to_numpy()
    if pd.api.types.is_bool_dtype(column):
        return np.where(values, "True", "False").astype(object)
    if pd.api.types.is_float_dtype(column):
        return np.round(values.astype("float64"), 6)
    if pd.api.types.is_integer_dtype(column):
        return values
    try:  # text straight into Arrow (NaN -> null), without a Python object per cell
        return pa.array(column, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return column.astype("object").where(column.notna(), None).to_numpy()


def _quoted(text: str) -> str:
    needs = any(c in text for c in ',"\r\n')
    return '"' + text.replace('"', '""') + '"' if needs else text
