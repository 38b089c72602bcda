"""The pooled labelled table a retraining run learns from: every upload's scored rows that have an
outcome, with the features as the customer sent them and `churned` as the label."""

from __future__ import annotations

import pandas as pd

from models.profile import ModelProfile
from retainwise.uploads.output import neutralise_formulas
from retainwise.uploads.reading import read_upload
from retainwise.uploads.validation import validate_upload

TARGET = "churned"
ID_COLUMN = "customer_id"


def labelled_upload_rows(data: bytes, profile: ModelProfile, labels: pd.DataFrame) -> pd.DataFrame:
    """One upload's accepted rows (read and validated as scoring did) joined to its outcomes."""
    upload = validate_upload(read_upload(data), profile, 1.0)
    ids = neutralise_formulas(upload.customer_ids.astype(str)).to_numpy()  # as results store them
    rows = upload.accepted[profile.feature_names].assign(**{ID_COLUMN: ids})
    churned = labels.drop_duplicates(ID_COLUMN).set_index(ID_COLUMN)[TARGET]
    rows = rows[rows[ID_COLUMN].isin(churned.index)]
    return rows.assign(**{TARGET: rows[ID_COLUMN].map(churned).astype(int).to_numpy()})


def pooled_table(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All uploads' labelled rows; ids prefixed by upload so repeats across uploads stay rows."""
    if not parts:
        raise ValueError(
            "no upload has outcomes yet: upload them with `retainwise outcomes upload`"
        )
    return pd.concat(
        [
            rows.assign(**{ID_COLUMN: prediction_id[:8] + ":" + rows[ID_COLUMN]})
            for prediction_id, rows in parts.items()
        ],
        ignore_index=True,
    )
