"""The customer's own input columns (email, plan, account manager) carried into the results after
the scored ones, so an integration need not join them back. The cells go out as uploaded (text,
never parsed as numbers) and never reach the model; with none named the results are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from retainwise.config.errors import UploadRejected
from retainwise.uploads.output import neutralise_formulas
from retainwise.uploads.reading import normalise_header


def resolve(headers: Iterable[object], names: tuple[str, ...]) -> list[str]:
    """The file's headers for the named columns, in the file's order: exact, else matched as the
    model's columns are (case, spaces, `_` and `-` ignored). UploadRejected names any missing,
    so the upload fails before a row is scored."""
    if not names:
        return []
    present = [str(h) for h in headers]
    loose: dict[str, str] = {}
    for header in present:
        loose.setdefault(normalise_header(header), header)
    found = {name: name if name in present else loose.get(normalise_header(name)) for name in names}
    missing = [name for name, header in found.items() if header is None]
    if missing:
        raise UploadRejected(
            "columns to carry into the results are not in the file: "
            + ", ".join(repr(name) for name in missing)
        )
    chosen = set(found.values())
    return [header for header in present if header in chosen]


def cells(frame: pd.DataFrame, positions: pd.Index, headers: list[str]) -> pd.DataFrame | None:
    """The carried columns' cells of the rows at `positions` (the accepted rows, in the order
    they are scored); None when nothing is carried."""
    if not headers:
        return None
    rows = np.asarray(positions, dtype=np.int64)
    return frame[headers].iloc[rows].reset_index(drop=True)


def with_carried(results: pd.DataFrame, carried: pd.DataFrame | None) -> pd.DataFrame:
    """The results with the carried cells after their own columns, spreadsheet-safe like the
    rejects' echoed cells; a name clashing with a result column gets ` (uploaded)`."""
    if carried is None:
        return results
    if len(carried) != len(results):
        raise ValueError(f"{len(carried)} rows of carried cells for {len(results)} results")
    names = [f"{c} (uploaded)" if c in results.columns else str(c) for c in carried.columns]
    safe = neutralise_formulas(pd.Series(names, dtype=object)).tolist()
    echoed = pd.DataFrame(
        {name: neutralise_formulas(carried.iloc[:, i]) for i, name in enumerate(safe)}
    )
    return pd.concat([results, echoed.set_axis(results.index)], axis=1)
