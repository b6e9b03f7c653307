"""Which valid rows of a manifest to use: a :class:`Selection` and the filters it applies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clasr.data.row_validation import ManifestEntry

# The filters of a Selection, in the order they are applied.
SELECTION_FILTERS = ("split", "speakers", "where", "min_duration", "max_duration", "skip", "max_utterances")


class Selection(BaseModel):
    """Which valid rows of a manifest to use.

    Filters apply in SELECTION_FILTERS order: split, speakers, ``where`` (column → accepted
    values, compared as text: a row is kept when every named column holds one of its values;
    a column that no row has is an error), min/max duration (inclusive bounds, on the header
    duration), then ``skip`` drops the first rows left and
    ``max_utterances`` caps the rest, both in manifest order, so that two selections of one
    split can be disjoint (e.g. skip=0, max_utterances=100 and skip=100).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: str | None = Field(default=None, min_length=1)
    speakers: list[str] | None = Field(default=None, min_length=1)
    where: dict[str, list[str | int | float | bool]] | None = Field(default=None, min_length=1)
    skip: int = Field(default=0, ge=0)
    max_utterances: int | None = Field(default=None, ge=1)
    min_duration: float | None = Field(default=None, ge=0)
    max_duration: float | None = Field(default=None, ge=0)

    @field_validator("where", mode="before")
    @classmethod
    def _one_value_is_a_list(cls, where: Any) -> Any:
        """``{accents: england}`` means ``{accents: [england]}``."""
        if isinstance(where, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in where.items()}
        return where

    @field_validator("where")
    @classmethod
    def _values_given(cls, where: dict[str, list] | None) -> dict[str, list] | None:
        empty = [column for column, values in (where or {}).items() if not values]
        if empty:
            raise ValueError(f"no accepted values for column(s) {empty}")
        return where

    @model_validator(mode="after")
    def _check_duration_bounds(self) -> Selection:
        if (
            self.min_duration is not None
            and self.max_duration is not None
            and self.min_duration > self.max_duration
        ):
            raise ValueError(
                f"min_duration ({self.min_duration}) must not exceed "
                f"max_duration ({self.max_duration})"
            )
        return self


def label_filter(selection: Selection, entry: ManifestEntry) -> str | None:
    """The first label filter (split, speakers, where) that removes the entry, if any."""
    if selection.split is not None and entry.split != selection.split:
        return "split"
    if selection.speakers is not None and entry.speaker not in selection.speakers:
        return "speakers"
    if selection.where is not None and not all(
        _column_text(entry, column) in {str(value) for value in accepted}
        for column, accepted in selection.where.items()
    ):
        return "where"
    return None


def _column_text(entry: ManifestEntry, column: str) -> str | None:
    """The value of any manifest column of the entry as text (None when the row lacks it)."""
    known = {"file_name": entry.file_name, "text": entry.text, "speaker": entry.speaker, "split": entry.split}
    value = known[column] if column in known else entry.extra.get(column)
    return None if value is None else str(value)


def duration_filter(selection: Selection, duration: float) -> str | None:
    """The first duration filter that removes an utterance of ``duration`` s, if any."""
    if selection.min_duration is not None and duration < selection.min_duration:
        return "min_duration"
    if selection.max_duration is not None and duration > selection.max_duration:
        return "max_duration"
    return None
