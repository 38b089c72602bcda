"""How an upload is scored: limits, when and how to cut it into chunks, what fails it.

Built once from Settings (`ScoringPolicy.from_settings`) and passed whole, so no caller unpacks
settings into positional arguments and no default is written beside the one in Settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from retainwise.adapters.accounts import Account
from retainwise.config.errors import UploadRejected
from retainwise.config.settings import Settings, setting_default
from retainwise.uploads.tables import Limits


@dataclass(frozen=True)
class ScoringPolicy:
    """Everything the scoring of one upload reads from configuration."""

    limits: Limits = field(default_factory=Limits)
    chunked_above_bytes: int = setting_default("chunked_above_bytes")  # larger: in chunks
    chunk_bytes: int = setting_default("chunk_bytes")  # about this many bytes per chunk
    split_above_bytes: int = setting_default("split_above_bytes")  # larger: two halves at once
    split_max_load: float = setting_default("split_max_load")  # busier cores: one piece
    max_rejected_share: float = setting_default("max_rejected_share")  # more rejected: FAILED
    reasons: bool = setting_default("top_reasons")  # results get a top_reasons column
    value_column: str | None = None  # the account's: the actions list ranks by value at risk
    drift_alert_psi: float = setting_default("drift_alert_psi")  # above: a feature drifted
    explain_top_n: int = setting_default("explain_top_n")  # the actions list's rows explained
    # the customer's input columns copied into the results after ours (uploads/carry.py); set
    # per upload from its own or its account's choice, never from Settings
    carry: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ScoringPolicy:
        return cls(
            limits=Limits.from_settings(settings),
            chunked_above_bytes=settings.chunked_above_bytes,
            chunk_bytes=settings.chunk_bytes,
            split_above_bytes=settings.split_above_bytes,
            split_max_load=settings.split_max_load,
            max_rejected_share=settings.max_rejected_share,
            reasons=settings.top_reasons,
            drift_alert_psi=settings.drift_alert_psi,
            explain_top_n=settings.explain_top_n,
        )

    def for_upload(self, account: Account | None, carry: tuple[str, ...] = ()) -> ScoringPolicy:
        """This policy with the account's choices: its value column, and the columns to carry
        (the upload's own `carry`, else the account's)."""
        if account is None:
            return replace(self, carry=carry)
        return replace(
            self, value_column=account.value_column, carry=carry or account.carry_columns
        )

    def is_large(self, size: int) -> bool:
        """True if a file of `size` (decompressed) bytes is scored in chunks; refuses one over
        the limit."""
        limit = self.limits.max_bytes
        if size > limit:
            raise UploadRejected(
                f"the file is {size / 1e6:.0f} MB; the limit is {limit / 1e6:.0f} MB"
            )
        return size > self.chunked_above_bytes
