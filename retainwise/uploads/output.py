"""What goes back to customers: result and reject tables, made safe to open in a spreadsheet."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ResultKeys:
    results: str
    rejects: str
    report: str  # the JSON summary
    report_html: str


def result_keys(account: str, prediction_id: str) -> ResultKeys:
    """Under the account, derived from the prediction id: a rerun overwrites, never duplicates."""
    prefix = f"results/{account}/{prediction_id}"
    return ResultKeys(f"{prefix}/results.csv", f"{prefix}/rejects.csv", f"{prefix}/report.json",
                      f"{prefix}/report.html")


def neutralise_formulas(values: pd.Series) -> pd.Series:
    """Prefix a quote to text a spreadsheet would run as a formula (CSV injection)."""
    text = values.astype("object")
    risky = text.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
    if not risky.any():
        return text
    return text.mask(risky, "'" + text[risky].astype(str))


def neutralise_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text column and every header neutralised: rejects echo the customer's cells and
    column names back verbatim."""
    text = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(
        frame[c])]
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

    table = pa.table({str(name): pa.array(_arrow_values(column), from_pandas=True)
                      for name, column in frame.items()})
    head = (",".join(_quoted(str(name)) for name in frame.columns) + "\n").encode() if header else b""
    if not len(frame):
        return head
    out = io.BytesIO()
    try:
        pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    except pa.ArrowInvalid:  # some value needs quoting: quote every text cell instead
        out = io.BytesIO()
        pa_csv.write_csv(table, out, pa_csv.WriteOptions(include_header=False))
    return head + out.getvalue()


def _arrow_values(column: pd.Series):
    values = column.to_numpy()
    if pd.api.types.is_bool_dtype(column):
        return np.where(values, "True", "False").astype(object)
    if pd.api.types.is_float_dtype(column):
        return np.round(values.astype("float64"), 6)
    if pd.api.types.is_integer_dtype(column):
        return values
    return column.astype("object").where(column.notna(), None).to_numpy()


def _quoted(text: str) -> str:
    needs = any(c in text for c in ',"\r\n')
    return '"' + text.replace('"', '""') + '"' if needs else text
