"""Validate an upload against the model version's profile with Great Expectations.

File-level problems raise UploadRejected; row-level problems reject the row with a reason, so
rows_total = rows_scored + rows_rejected always holds.

Design for speed (1M rows): text is cast once, column by column, with vectorised pandas (numbers
in any common notation, booleans, categories matched case-insensitively). The Expectation Suite,
built from the training profile, then runs on a compact all-float64 "check frame" (id present,
each numeric feature): GX's pandas engine hashes the whole batch and compares object columns
cell by cell in Python, but float64 columns take its vectorised path, so GX stays a fraction of
a second at 1M rows. GX type expectations are not used: on pandas 3 `str` columns they fail
whatever the type name, and after the cast every checked column is float64 by construction.

The categories are encoded by Arrow on a second thread (its kernels release the GIL) while this
one casts the numbers and runs GX, so validation uses both cores when the other is free. GX's
expectations and suites are kept per model version, each expectation's configuration built once
(`kept_configuration`): GX's fixed cost per call is about 13 ms, was 21.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import islice
from typing import Any, NamedTuple, TypedDict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike

from models.profile import FeatureProfile, ModelProfile
from retainwise.config.errors import UploadRejected
from retainwise.uploads.reading import match_columns, normalise_header
from retainwise.uploads.tables import TextTable

ID_PRESENT = "customer id present"  # check-frame column: 1.0 where the row has an id, else NaN
RANGE_MARGIN = 0.5  # numbers may stray this share of the training span beyond its min and max
MISSING_MARKERS = {"na", "n/a", "nan", "null", "none", "#n/a", "-", "?"}
TRUE_WORDS = {"yes", "y", "true", "t", "1", "1.0"}
FALSE_WORDS = {"no", "n", "false", "f", "0", "0.0"}
# Arrow (RE2) patterns. "1,234.5" (comma groups) and "1.234,5" / "29,85" (decimal comma); spaces,
# no-break spaces and ' also group digits
PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
DOT_DECIMAL = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[+-]?\.\d+"
COMMA_DECIMAL = r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d*)?|[+-]?,\d+"
GROUPING = "[\\s\u00a0\u202f']"
REJECT_SAMPLE = 3
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas 3's default `str`, Arrow-backed
CAST_SAMPLE = 2000  # cells tried before casting a whole column, so a doomed cast fails cheaply
DUPLICATE_REASON = "duplicate customer id; already scored from row {row}"  # halves.py parses it


class ColumnQuality(TypedDict, total=False):
    """One feature's counts, as the report's `columns` shows them (JSON; summed over chunks)."""

    kind: str  # "numeric" or "categorical"
    missing: int
    unparseable: int  # numeric: cells that are no number
    out_of_range: int  # numeric with a training range
    unknown: int  # categorical: rows whose value training never saw
    unknown_values: dict[str, int]  # ... and how many of each


@dataclass(frozen=True)
class UploadQuality:
    """What validation counted for the report, beside the rows it accepted."""

    rows_read: int | None = None  # data rows parsed; None: as many as rows_total
    columns: dict[str, ColumnQuality] = field(default_factory=dict)
    reject_kinds: dict[str, int] = field(default_factory=dict)  # rejected rows per kind
    ignored_columns: list[str] = field(default_factory=list)  # in the file, not used


@dataclass
class ValidatedUpload:
    accepted: pd.DataFrame  # features ready to score (numbers float64); index = data row
    customer_ids: pd.Series  # aligned with `accepted`
    rejects: pd.DataFrame  # row_number, reason, then the row's original cells
    rows_total: int
    failure: str | None = None  # set when too many rows were rejected: the upload FAILS
    quality: UploadQuality = field(default_factory=UploadQuality)
    source: dict[str, str] = field(default_factory=dict)  # how the file was read
    # per categorical feature, accepted rows per training-spelled value (None: missing), for drift
    category_counts: dict[str, dict[str | None, int]] = field(default_factory=dict)
    # the account's value column (value at risk), as uploaded, for the accepted rows; or None
    values: pd.Series | None = None

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)


def unknown_categories(columns: dict[str, ColumnQuality]) -> dict[str, int]:
    """Per column, the rows whose category training never saw (scored, but counted)."""
    return {name: quality["unknown"] for name, quality in columns.items() if quality.get("unknown")}


def top_counts(counts: dict[str, int], keep: int = 10) -> dict[str, int]:
    """The `keep` largest counts, largest first: what the report lists of unseen values."""
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:keep])


def require_columns(frame: pd.DataFrame, profile: ModelProfile) -> pd.DataFrame:
    """Rename to the model's column names; name what is missing and the closest header present."""
    required = ([profile.id_column] if profile.id_column else []) + profile.feature_names
    frame = match_columns(frame, required, profile.aliases)
    present = [c for c in frame.columns if c not in required]

    def hint(name: str) -> str:
        keys = {normalise_header(c): c for c in present}
        close = difflib.get_close_matches(normalise_header(name), list(keys), n=1, cutoff=0.6)
        return f" (did you mean {keys[close[0]]!r}?)" if close else ""

    if profile.id_column and profile.id_column not in frame.columns:
        raise UploadRejected(
            f"no customer id column: expected a column named "
            f"{profile.id_column!r}{hint(profile.id_column)}"
        )
    missing = [name for name in profile.feature_names if name not in frame.columns]
    if missing:
        raise UploadRejected(
            "missing required columns: " + ", ".join(f"{name}{hint(name)}" for name in missing)
        )
    return frame


def numeric_bounds(profile: ModelProfile) -> dict[str, tuple[float, float]]:
    bounds = {}
    for feature in profile.features:
        low, high = feature.minimum, feature.maximum
        if feature.kind == "numeric" and low is not None and high is not None:
            span = max(high - low, 1.0)
            bounds[feature.name] = (low - RANGE_MARGIN * span, high + RANGE_MARGIN * span)
    return bounds


def is_flag(feature: FeatureProfile) -> bool:
    """A 0/1 numeric feature, where Yes/No, True/False and Y/N mean 1/0."""
    low, high = feature.minimum, feature.maximum
    return (
        feature.kind == "numeric"
        and low is not None
        and high is not None
        and low >= 0
        and high <= 1
    )


def clean_text(column: pd.Series) -> pd.Series:
    """Strip surrounding whitespace; blank and whitespace-only cells become missing."""
    return pd.Series(TEXT.__from_arrow__(arrow_text(column)), index=column.index)


def arrow_column(raw: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The column as Arrow strings: free for the Arrow-backed text the regular reader gives."""
    return pa.array(raw.astype("str"))


def arrow_text(raw: pd.Series) -> pa.Array:
    """Trimmed Arrow strings with blank cells null: Arrow's kernels are C++, not per-cell Python."""
    text = arrow_column(raw)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)


def to_float(text: pa.Array) -> pa.Array:
    """Arrow's cast; text it refuses (rare: the regexes admitted it) goes through pandas."""
    try:
        return pc.cast(text, pa.float64())
    except pa.ArrowInvalid:
        return pa.array(
            pd.to_numeric(pd.Series(text.to_pylist(), dtype=object), errors="coerce").astype(
                "float64"
            ),
            from_pandas=True,
        )


def cast_whole(column: pa.Array | pa.ChunkedArray, comma_decimal: bool) -> np.ndarray | None:
    """One Arrow cast when every cell is a plain number ("29,85" ones too in a `;` file)."""
    attempts = [column] + ([pc.replace_substring(column, ",", ".")] if comma_decimal else [])
    for attempt in attempts:
        try:
            pc.cast(attempt.slice(0, CAST_SAMPLE), pa.float64())  # a doomed cast fails cheaply
            values: np.ndarray = pc.cast(attempt, pa.float64()).to_numpy(zero_copy_only=False)
            return values
        except pa.ArrowInvalid:
            continue
    return None


def parse_numbers(raw: pd.Series, comma_decimal: bool, flag: bool) -> tuple[pd.Series, pd.Series]:
    """(numbers, unparseable mask): a whole-column cast when clean, else notation rules applied
    to the cells that are not plain numbers."""
    values = cast_whole(arrow_column(raw), comma_decimal)
    if values is not None:
        return pd.Series(values, index=raw.index), pd.Series(False, index=raw.index)
    text = arrow_text(raw)
    values = cast_whole(text, comma_decimal)  # clean once blanks are null and cells trimmed
    if values is not None:
        return pd.Series(values, index=raw.index), pd.Series(False, index=raw.index)
    plain = pc.fill_null(pc.match_substring_regex(text, PLAIN_NUMBER), True)
    values = np.array(
        to_float(pc.if_else(plain, text, pa.scalar(None, text.type))), dtype="float64"
    )  # a writable copy
    pending = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
    parsed, bad = parse_notations(text.take(pending), comma_decimal, flag)
    values[pending] = parsed
    unparseable = np.zeros(len(values), dtype=bool)
    unparseable[pending] = bad
    return pd.Series(values, index=raw.index), pd.Series(unparseable, index=raw.index)


def parse_notations(
    text: pa.Array, comma_decimal: bool, flag: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Numbers from grouped, decimal-comma, boolean or missing-marker text: (values,
    unparseable)."""
    null = pa.scalar(None, text.type)
    lower = pc.utf8_lower(text)
    missing = pc.is_in(lower, value_set=pa.array(sorted(MISSING_MARKERS), text.type))
    grouped = pc.replace_substring_regex(text, GROUPING, "")
    dot = pc.match_substring_regex(grouped, f"^(?:{DOT_DECIMAL})$")
    comma = pc.match_substring_regex(grouped, f"^(?:{COMMA_DECIMAL})$")
    use_comma = pc.and_(comma, pc.or_(pc.invert(dot), pa.scalar(comma_decimal)))
    as_comma = pc.replace_substring(pc.replace_substring(grouped, ".", ""), ",", ".")
    as_dot = pc.replace_substring(grouped, ",", "")
    candidate = pc.if_else(use_comma, as_comma, pc.if_else(dot, as_dot, null))
    parsed = to_float(pc.if_else(missing, null, candidate))
    if flag:
        for spelling, number in ((TRUE_WORDS, 1.0), (FALSE_WORDS, 0.0)):
            hit = pc.is_in(lower, value_set=pa.array(sorted(spelling), text.type))
            parsed = pc.if_else(hit, pa.scalar(number), parsed)
    bad = pc.and_(pc.invert(missing), pc.is_null(parsed))
    return (
        parsed.to_numpy(zero_copy_only=False),
        pc.fill_null(bad, False).to_numpy(zero_copy_only=False),
    )


def category_lookup(feature: FeatureProfile) -> dict[str, str]:
    """Case- and space-insensitive spellings -> the training category, booleans included."""
    lookup = {" ".join(c.split()).lower(): c for c in feature.categories}
    keys = set(lookup)
    for words, other in ((TRUE_WORDS, FALSE_WORDS), (FALSE_WORDS, TRUE_WORDS)):
        mine, theirs = keys & words, keys & other
        if len(keys) == 2 and len(mine) == 1 and len(theirs) == 1:
            for word in words:
                lookup.setdefault(word, lookup[next(iter(mine))])
    return lookup


def factorize_text(raw: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """(int32 code per cell, -1 for missing; distinct values in order of first appearance), as
    pd.factorize gives them, from one Arrow dictionary encoding (no int64 copies of the codes)."""
    text = arrow_column(raw)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    encoded = pc.dictionary_encode(text)
    return (
        pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False),
        encoded.dictionary.to_pylist(),
    )


class CategoryCodes(NamedTuple):
    """A categorical column as codes: what drift counts are made from without hashing text."""

    codes: np.ndarray  # int32 per cell, -1 for missing
    spellings: list[Any]  # the training spelling per code (NaN: missing)
    rows_per_code: np.ndarray  # missing rows last


class ParsedCategories(NamedTuple):
    values: pd.Series  # the training spelling of each cell, as a Categorical
    quality: ColumnQuality
    codes: CategoryCodes


def parse_categories(raw: pd.Series, feature: FeatureProfile) -> ParsedCategories:
    """A categorical column in training spellings, its report counts and its codes; Python runs
    per distinct value, not per cell."""
    codes, uniques = factorize_text(raw)
    lookup, known = category_lookup(feature), set(feature.categories)
    canonical: list[Any] = []  # a training spelling, the text as uploaded, or NaN (missing)
    for value in uniques:
        text = " ".join(str(value).split())
        canonical.append(lookup.get(text.lower(), str(value).strip()) if text else np.nan)
    values = category_column(codes, canonical, raw.index)
    rows_per_code = code_counts(codes, len(canonical))
    unknown: dict[str, int] = {}
    missing = int(rows_per_code[-1])
    for value, count in zip(canonical, rows_per_code[:-1], strict=False):
        if value is np.nan:
            missing += int(count)
        elif isinstance(value, str) and value not in known and count:  # str: not NaN
            unknown[value] = unknown.get(value, 0) + int(count)
    return ParsedCategories(
        values,
        {
            "kind": "categorical",
            "missing": missing,
            "unknown": sum(unknown.values()),
            "unknown_values": top_counts(unknown),
        },
        CategoryCodes(codes, canonical, rows_per_code),
    )


def code_counts(codes: np.ndarray, distinct: int) -> np.ndarray:
    """Rows per code, the missing rows (code -1) last: one integer pass."""
    return np.bincount(np.where(codes < 0, distinct, codes), minlength=distinct + 1)


def category_column(codes: np.ndarray, canonical: list[Any], index: pd.Index) -> pd.Series:
    """The training spellings as a pandas Categorical (NaN = missing): the encoder reads its
    integer codes instead of hashing every cell's text again."""
    position: dict[str, int] = {}  # several spellings may map to one training category
    positions = [
        -1 if value is np.nan else position.setdefault(value, len(position)) for value in canonical
    ] + [-1]  # code -1 -> last, missing
    table = np.array(positions, dtype=np.int8 if len(position) < 127 else np.int32)
    categories = pd.Index(list(position), dtype=object)
    return pd.Series(
        pd.Categorical.from_codes(table[codes], categories=categories, validate=False),
        index=index,
        copy=False,
    )


def value_counts(rows_per_code: np.ndarray, canonical: list[Any]) -> dict[str | None, int]:
    """Rows per training-spelled value from the rows per code (missing last): no string hashing."""
    counts: dict[str | None, int] = {None: int(rows_per_code[-1])}
    for value, count in zip(canonical, rows_per_code[:-1], strict=False):
        key = None if value is np.nan else value
        counts[key] = counts.get(key, 0) + int(count)
    return counts


SuiteKey = tuple[bool, tuple[tuple[str, tuple[float, float]], ...]]  # what the suite depends on


def suite_key(profile: ModelProfile) -> SuiteKey:
    """What a model version's expectations are built from: a key to keep them by."""
    return bool(profile.id_column), tuple(numeric_bounds(profile).items())


def build_expectations(profile: ModelProfile) -> list[tuple[Any, str]]:
    """(expectation, check name) pairs derived from the training profile, for the check frame."""
    return list(kept_expectations(suite_key(profile)))


@lru_cache(maxsize=64)
def kept_expectations(key: SuiteKey) -> tuple[tuple[Any, str], ...]:
    """The expectations of a suite key, built once per model version in a warm process."""
    import great_expectations as gx

    id_checked, bounds = key
    checks: list[tuple[Any, str]] = []
    if id_checked:
        not_null = kept_configuration(gx.expectations.ExpectColumnValuesToNotBeNull)
        checks.append((not_null(column=ID_PRESENT), "missing id"))
    between = kept_configuration(gx.expectations.ExpectColumnValuesToBeBetween)
    for name, (low, high) in bounds:
        checks.append(
            (between(column=name, min_value=low, max_value=high), f"out of range: {name}")
        )
    return tuple(checks)


@lru_cache(maxsize=64)
def kept_suite(key: SuiteKey, only: frozenset[str] | None) -> tuple[Any, tuple[str, ...]]:
    """(GX suite, check names in its order) of a suite key's expectations, those in `only` if
    given: one per model version (and set of failed checks), not one per call."""
    import great_expectations as gx

    checks = [(e, check) for e, check in kept_expectations(key) if only is None or check in only]
    suite = gx.ExpectationSuite(name="upload", expectations=[e for e, _ in checks])
    return suite, tuple(check for _, check in checks)


@cache
def kept_configuration(base: type) -> type:
    """GX's `base` expectation, whose configuration is built once per state of the object.

    GX rebuilds an expectation's configuration (a pydantic dict() and a new object) on each of
    the ~90 reads one validation makes of it: about a third of GX's fixed cost per call. What
    is checked, and how, is `base`'s: only that rebuild is kept."""
    from great_expectations.compatibility import pydantic

    def configuration(self: Any) -> Any:
        kept = self._kept_configuration
        if kept is None or kept[0] != self.__dict__:  # built again after any field changes
            kept = (dict(self.__dict__), base.configuration.fget(self))  # type: ignore[attr-defined]
            self._kept_configuration = kept
        return kept[1]

    namespace = {
        "__module__": __name__,
        "__doc__": base.__doc__,
        "__annotations__": {"_kept_configuration": Any},
        "_kept_configuration": pydantic.PrivateAttr(default=None),
        "configuration": property(configuration),
    }
    return type(f"{base.__name__}Kept", (base,), namespace)


@lru_cache(maxsize=1)
def _batch_definition() -> Any:
    """GX's ephemeral context takes about a second to build; one per process is enough."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("uploads").add_dataframe_asset("upload")
    return asset.add_batch_definition_whole_dataframe("whole upload")


def failing_rows(checked: pd.DataFrame, profile: ModelProfile) -> dict[str, np.ndarray]:
    """Run the suite on the float64 check frame; the failing row indices per check.

    Two passes on one GX validator: pass/fail of every expectation (BOOLEAN_ONLY: GX resolves
    about half the metrics, and most uploads pass them all), then the row indices (COMPLETE) of
    the failed ones only. One validator fetches and fingerprints the frame once (Batch.validate
    would build a validator, and fetch the frame again, per call).
    """
    from great_expectations.validator.v1_validator import Validator

    if checked.empty or not build_expectations(profile):
        return {}
    validator = Validator(
        _batch_definition(),
        result_format={"result_format": "BOOLEAN_ONLY"},
        batch_parameters={"dataframe": checked},
    )
    failed = {
        check for check, outcome in run_suite(validator, profile, None) if not outcome.success
    }
    if not failed:
        return {}
    validator.result_format = {
        "result_format": "COMPLETE",
        "partial_unexpected_count": 0,
        "return_unexpected_index_query": False,
    }
    return {
        check: np.asarray(outcome.result.get("unexpected_index_list") or [], dtype=np.int64)
        for check, outcome in run_suite(validator, profile, failed)
        if not outcome.success
    }


def run_suite(
    validator: Any, profile: ModelProfile, only: set[str] | None
) -> list[tuple[str, Any]]:
    """(check name, GX result) of the profile's expectations (those named in `only`, if given)."""
    suite, checks = kept_suite(suite_key(profile), None if only is None else frozenset(only))
    result = validator.validate_expectation_suite(suite)
    for outcome in result.results:
        if outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"validation could not run: {outcome.exception_info}")
    return list(zip(checks, result.results, strict=False))


class Reasons:
    """The first reason each row is rejected for, and a short kind for counting in the report."""

    def __init__(self, rows: int):
        self.text = np.full(rows, None, dtype=object)
        self.kind = np.full(rows, None, dtype=object)
        self.rejected = np.zeros(rows, dtype=bool)

    def add(
        self, mask: np.ndarray, kind: str, messages: str | Callable[[np.ndarray], list[str]]
    ) -> None:
        """`messages`: one string for all, or a function of the new rows' positions."""
        new = np.asarray(mask, dtype=bool) & ~self.rejected
        if not new.any():
            return
        positions = np.flatnonzero(new)
        self.text[positions] = messages if isinstance(messages, str) else messages(positions)
        self.kind[positions] = kind
        self.rejected |= new


@dataclass
class CastFeatures:
    """The upload's features cast once, column by column, for scoring and for the checks."""

    prepared: dict[str, pd.Series]  # features to score
    checked: pd.DataFrame  # the all-float64 check frame GX runs on
    columns: dict[str, ColumnQuality]
    unparseable: dict[str, pd.Series]  # per numeric feature: cells that are no number
    codes: dict[str, CategoryCodes]  # per categorical feature


def cast_numbers(
    frame: pd.DataFrame, profile: ModelProfile, ids: pd.Series, comma_decimal: bool
) -> CastFeatures:
    """The numeric features cast (numbers in any common notation) and the check frame."""
    cast = CastFeatures({}, pd.DataFrame(), {}, {}, {})
    for feature in profile.features:
        if feature.kind != "numeric":
            continue
        raw = frame[feature.name]
        values, unparseable = parse_numbers(raw, comma_decimal, is_flag(feature))
        cast.prepared[feature.name] = values
        cast.unparseable[feature.name] = unparseable
        cast.columns[feature.name] = {
            "kind": "numeric",
            "missing": int(np.isnan(values.to_numpy()).sum()),
            "unparseable": int(unparseable.to_numpy().sum()),
        }
    present = np.where(ids.notna().to_numpy(), 1.0, np.nan)
    cast.checked = pd.DataFrame(  # built at once: one float64 block, not a column at a time
        {ID_PRESENT: present} | {name: v.to_numpy() for name, v in cast.prepared.items()},
        index=frame.index,
    )
    return cast


def cast_categories(raw: dict[str, pd.Series], profile: ModelProfile) -> CastFeatures:
    """The categorical features (`raw`: their columns) in training spellings, with their counts
    and codes."""
    cast = CastFeatures({}, pd.DataFrame(), {}, {}, {})
    for feature in profile.features:
        if feature.kind != "numeric":
            name = feature.name
            cast.prepared[name], cast.columns[name], cast.codes[name] = parse_categories(
                raw[name], feature
            )
    return cast


def in_feature_order(
    numbers: CastFeatures, categories: CastFeatures, profile: ModelProfile
) -> CastFeatures:
    """Both parts of the cast as one, features in the profile's order (the accepted frame's
    columns and the report's)."""
    prepared = {**numbers.prepared, **categories.prepared}
    columns = {**numbers.columns, **categories.columns}
    names = profile.feature_names
    return CastFeatures(
        {name: prepared[name] for name in names},
        numbers.checked,
        {name: columns[name] for name in names},
        numbers.unparseable,
        categories.codes,
    )


def categorical_columns(frame: pd.DataFrame, profile: ModelProfile) -> dict[str, pd.Series]:
    return {f.name: frame[f.name] for f in profile.features if f.kind != "numeric"}


def row_reasons(
    frame: pd.DataFrame,
    profile: ModelProfile,
    checked: pd.DataFrame,
    columns: dict[str, ColumnQuality],
    unparseable: dict[str, pd.Series],
) -> Reasons:
    """Missing id, then unparseable, then out-of-range (the last two from the GX suite)."""
    rows = len(frame)
    failing = failing_rows(checked, profile)

    def mask_of(check: str) -> np.ndarray:
        mask = np.zeros(rows, dtype=bool)
        mask[failing.get(check, [])] = True
        return mask

    reasons = Reasons(rows)
    reasons.add(mask_of("missing id"), "missing id", "customer id is missing")
    for name, mask in unparseable.items():
        reasons.add(
            mask.to_numpy(),
            f"not a number: {name}",
            not_a_number(name, frame[name]),
        )
    for name, (low, high) in numeric_bounds(profile).items():
        mask = mask_of(f"out of range: {name}")
        columns[name]["out_of_range"] = int(mask.sum())
        reasons.add(
            mask,
            f"out of range: {name}",
            out_of_range(name, checked[name].to_numpy(), low, high),
        )
    return reasons


def not_a_number(name: str, raw: pd.Series) -> Callable[[np.ndarray], list[str]]:
    """The reasons of the rows at some positions whose cell is no number (built when needed)."""
    return lambda positions: [f"{name}: {v!r} is not a number" for v in raw.iloc[positions]]


def out_of_range(
    name: str, values: np.ndarray, low: float, high: float
) -> Callable[[np.ndarray], list[str]]:
    """The reasons of the rows at some positions whose number is implausible."""
    return lambda positions: [
        f"{name}: {x:g} is outside the plausible range {low:g} to {high:g}"
        for x in values[positions]
    ]


def too_many_rejected(
    rejected: int, rows_total: int, share: float, examples: Iterable[tuple[int, str]]
) -> str | None:
    """The upload's failure when more than `share` of its rows were rejected, else None."""
    if not rows_total or rejected / rows_total <= share:
        return None
    sample = "; ".join(f"row {row}: {why}" for row, why in islice(examples, REJECT_SAMPLE))
    return (
        f"{rejected} of {rows_total} rows are invalid (more than {share:.0%}); for example {sample}"
    )


def validate_upload(
    table: TextTable | pd.DataFrame,
    profile: ModelProfile,
    max_rejected_share: float = 0.5,
    value_column: str | None = None,
) -> ValidatedUpload:
    """Cast, check, reject rows with reasons; `failure` is set when too many rows are rejected."""
    if isinstance(table, pd.DataFrame):
        table = TextTable(table)
    original = table.frame.reset_index(drop=True)
    frame = require_columns(original, profile)
    rows = len(frame)
    ids = (
        clean_text(frame[profile.id_column])
        if profile.id_column
        else pd.Series(np.arange(1, rows + 1).astype(str), dtype=TEXT)
    )
    comma_decimal = table.source.get("delimiter", "comma") != "comma"
    with ThreadPoolExecutor(1, thread_name_prefix="categories") as pool:
        # Arrow encodes the categories (GIL released) while this thread does the rest: 2 cores
        categories = pool.submit(cast_categories, categorical_columns(frame, profile), profile)
        numeric = cast_numbers(frame, profile, ids, comma_decimal)
        reasons = row_reasons(frame, profile, numeric.checked, numeric.columns, numeric.unparseable)
        numbers = row_numbers(rows, table.malformed)
        add_duplicates(reasons, ids, numbers)
        rejects = reject_table(original, reasons, numbers, table.malformed)
        cast = in_feature_order(numeric, categories.result(), profile)
    columns = cast.columns
    rows_total = rows + len(table.malformed)
    known = set(profile.feature_names) | {profile.id_column}
    quality = UploadQuality(
        rows_read=rows,
        columns=columns,
        reject_kinds=reject_kinds(reasons, table.malformed),
        ignored_columns=[c for c in frame.columns if c not in known],
    )
    keep = np.flatnonzero(~reasons.rejected)
    every_row = len(keep) == rows
    index = frame.index if every_row else frame.index[keep]
    accepted = pd.DataFrame(
        {  # Series keep their dtype: pandas 3 would infer `str` from arrays
            name: values if every_row else values.iloc[keep].set_axis(index)
            for name, values in cast.prepared.items()
        },
        index=index,
    )
    rejected = np.flatnonzero(reasons.rejected)
    counts = {
        name: value_counts(
            per_code
            if every_row
            # all rows less the rejected ones
            else per_code - code_counts(c[rejected], len(spellings)),
            spellings,
        )
        for name, (c, spellings, per_code) in cast.codes.items()
    }
    return ValidatedUpload(
        accepted,
        ids if every_row else ids.iloc[keep],
        rejects,
        rows_total,
        too_many_rejected(
            len(rejects),
            rows_total,
            max_rejected_share,
            zip(rejects["row_number"], rejects["reason"], strict=False),
        ),
        quality,
        dict(table.source),
        counts,
        value_cells(frame, value_column, index),
    )


def value_cells(frame: pd.DataFrame, name: str | None, index: pd.Index) -> pd.Series | None:
    """The value column's cells of the rows at `index`, as uploaded (the actions list parses
    them; a cell that is not a number leaves that row's value at risk empty). The column is
    found as the model's are (case, spaces, `_` and `-` ignored); a file without it is refused,
    naming it, rather than ranked by nothing."""
    if not name:
        return None
    header = name if name in frame.columns else None
    for column in frame.columns if header is None else ():
        if normalise_header(column) == normalise_header(name):
            header = column
            break
    if header is None:
        raise UploadRejected(f"the account's value column {name!r} is not in the file")
    return frame[header].loc[index]


def add_duplicates(reasons: Reasons, ids: pd.Series, numbers: np.ndarray) -> None:
    """Among rows otherwise fit to score, the first copy of an id is scored, later ones rejected.

    Only rows whose id hash repeats are compared as text (most files have no duplicate at all)."""
    valid = np.flatnonzero(ids.notna().to_numpy() & ~reasons.rejected)
    repeats = pd.Series(id_hashes(ids.iloc[valid])).duplicated(keep=False).to_numpy()
    if not repeats.any():
        return
    candidates = valid[repeats]  # rows whose id may occur twice, in row order
    column = pa.array(ids.iloc[candidates])
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    codes = pc.dictionary_encode(column).indices.to_numpy(zero_copy_only=False)
    first = np.full(codes.max() + 1, len(candidates))
    np.minimum.at(first, codes, np.arange(len(candidates)))  # first candidate per id: integers
    later = first[codes] != np.arange(len(candidates))
    if not later.any():
        return
    first_row = np.zeros(len(reasons.rejected), dtype=np.int64)
    first_row[candidates[later]] = candidates[first[codes[later]]]
    duplicate = np.zeros(len(reasons.rejected), dtype=bool)
    duplicate[candidates[later]] = True
    reasons.add(
        duplicate,
        "duplicate id",
        lambda pos: [DUPLICATE_REASON.format(row=numbers[first_row[p]]) for p in pos],
    )


MIX1, MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's finaliser


def _mix(x: np.ndarray) -> np.ndarray:
    x ^= x >> np.uint64(30)
    x *= MIX1
    x ^= x >> np.uint64(27)
    x *= MIX2
    x ^= x >> np.uint64(31)
    return x


def id_hashes(ids: pd.Series) -> np.ndarray:
    """A 64-bit hash of each id's UTF-8 bytes, read 8 bytes at a time from the Arrow buffers:
    no Python string per cell (pandas hashes object columns ~20x slower). Missing ids hash as ""."""
    text = pa.array(ids)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = text.cast(pa.large_string())
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[
        text.offset : text.offset + len(text) + 1
    ]
    base, end = int(offsets[0]), int(offsets[-1])
    padded = np.zeros(end - base + 8, dtype=np.uint8)  # 8 spare bytes: every read is in bounds
    if end > base:
        padded[: end - base] = np.frombuffer(text.buffers()[2], dtype=np.uint8)[base:end]
    words = np.lib.stride_tricks.as_strided(  # words[i] = the 8 bytes from byte i on
        padded, shape=(len(padded) - 7, 8), strides=(1, 1)
    ).view("<u8")[:, 0]
    starts, lengths = offsets[:-1] - base, np.diff(offsets)
    if text.null_count:  # Arrow lets a null slot hold bytes; a missing id hashes as ""
        lengths = np.where(pc.is_null(text).to_numpy(zero_copy_only=False), 0, lengths)
    hashes = lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for k in range(0, int(lengths.max(initial=0)), 8):
        rows = None if int(lengths.min()) >= k + 8 else np.flatnonzero(lengths > k)
        if rows is None:  # every id has 8 more bytes (the usual fixed-width ids)
            hashes = _mix(hashes ^ words[starts + k])
            continue
        bits = np.minimum(lengths[rows] - k, 8).astype(np.uint64) * np.uint64(8)
        keep = np.where(
            bits == 64,
            np.uint64(2**64 - 1),
            (np.uint64(1) << (bits & np.uint64(63))) - np.uint64(1),
        )
        hashes[rows] = _mix(hashes[rows] ^ (words[starts[rows] + k] & keep))
    return hashes


def row_numbers(rows: int, malformed: list[tuple[int, str]]) -> np.ndarray:
    """Data row number (1 = first row under the header) of each parsed row, around skipped ones."""
    numbers = np.arange(1, rows + len(malformed) + 1)
    if not malformed:
        return numbers
    return numbers[~np.isin(numbers, [row for row, _ in malformed])][:rows]


def reject_table(
    original: pd.DataFrame, reasons: Reasons, numbers: np.ndarray, malformed: list[tuple[int, str]]
) -> pd.DataFrame:
    """Row number, reason, then the row's cells exactly as uploaded; in file order."""
    positions = np.flatnonzero(reasons.rejected)
    rejects = reject_rows(original, positions, numbers[positions], reasons.text[positions])
    if malformed:
        lines = pd.DataFrame(
            {"row_number": [row for row, _ in malformed], "reason": [why for _, why in malformed]}
        )
        rejects = pd.concat([rejects, lines], ignore_index=True).sort_values(
            "row_number", kind="stable", ignore_index=True
        )
        return rejects.astype({"row_number": "int64"})
    return rejects  # row_number is int64 already: astype would copy every column


def reject_rows(
    original: pd.DataFrame, positions: np.ndarray, numbers: ArrayLike, reasons: ArrayLike
) -> pd.DataFrame:
    """Row number, reason, then the rows' cells exactly as uploaded (a clashing name gets a
    suffix)."""
    # no rows: a slice, as Arrow's take of nothing joins each column's chunks first
    cells = (original.iloc[positions] if len(positions) else original.iloc[:0]).reset_index(
        drop=True
    )
    head = pd.DataFrame(
        {
            "row_number": np.asarray(numbers, dtype=np.int64),
            "reason": np.asarray(reasons, dtype=object),
        }
    )
    return pd.concat(
        [
            head,
            cells.set_axis(
                [c if c not in head.columns else f"{c} (uploaded)" for c in cells.columns], axis=1
            ),
        ],
        axis=1,
    )


def reject_kinds(reasons: Reasons, malformed: list[tuple[int, str]]) -> dict[str, int]:
    kinds = pd.Series(reasons.kind[reasons.rejected]).value_counts()
    counts = {str(k): int(v) for k, v in kinds.items()}
    if malformed:
        counts["wrong number of fields"] = len(malformed)
    return counts
