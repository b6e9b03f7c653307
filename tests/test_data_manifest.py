"""Manifest reading: validation with row numbers and reasons, filters, ids, reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import soundfile as sf

from clasr.data.manifest import (
    BAD_SYNTAX,
    EMPTY_AUDIO,
    EMPTY_TEXT,
    MISSING_COLUMN,
    MISSING_FILE,
    PATH_OUTSIDE_FOLDER,
    UNREADABLE_AUDIO,
    BadRow,
    DataError,
    ManifestReport,
    Selection,
    read_dataset,
)

RATE = 16000
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_audio(folder: Path, name: str, seconds: float = 0.1) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(round(seconds * RATE), 0.1, dtype=np.float32), RATE)


def write_jsonl(folder: Path, lines: list[dict[str, Any] | str]) -> None:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    (folder / "metadata.jsonl").write_text(text + "\n")


def write_csv(folder: Path, header: list[str], records: list[list[Any]]) -> None:
    with (folder / "metadata.csv").open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(records)


def row(file_name: str, text: str = "hello", **columns: Any) -> dict[str, Any]:
    return {"file_name": file_name, "text": text, **columns}


def accounted(report: ManifestReport) -> int:
    return report.kept + len(report.bad_rows) + sum(report.filtered.values())


@pytest.fixture
def bad_dataset(tmp_path: Path) -> Path:
    """One good row, then one row per bad-row reason (with a blank line on line 3)."""
    write_audio(tmp_path, "audio/good.wav")
    (tmp_path / "audio/garbage.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "audio/empty.wav", np.zeros(0, dtype=np.float32), RATE)
    write_jsonl(
        tmp_path,
        [
            row("audio/good.wav"),  # 1
            '{"file_name": "audio/good.wav", "text": ',  # 2
            "",  # 3
            {"text": "no file name"},  # 4
            row("audio/good.wav", text="   "),  # 5
            row("../outside.wav"),  # 6
            row("/etc/absolute.wav"),  # 7
            row("audio/missing.wav"),  # 8
            row("audio/garbage.wav"),  # 9
            row("audio/empty.wav"),  # 10
        ],
    )
    return tmp_path


EXPECTED_BAD = [
    (2, BAD_SYNTAX),
    (4, MISSING_COLUMN),
    (5, EMPTY_TEXT),
    (6, PATH_OUTSIDE_FOLDER),
    (7, PATH_OUTSIDE_FOLDER),
    (8, MISSING_FILE),
    (9, UNREADABLE_AUDIO),
    (10, EMPTY_AUDIO),
]


def test_every_bad_row_reason_is_reported_with_its_row(bad_dataset: Path) -> None:
    seen: list[BadRow] = []
    utterances, report = read_dataset(bad_dataset, on_bad_row=seen.append)

    assert [u.id for u in utterances] == ["audio/good.wav"]
    assert [(bad.row, bad.reason) for bad in report.bad_rows] == EXPECTED_BAD
    assert seen == report.bad_rows
    assert report.bad_counts() == {
        BAD_SYNTAX: 1,
        MISSING_COLUMN: 1,
        EMPTY_TEXT: 1,
        PATH_OUTSIDE_FOLDER: 2,
        MISSING_FILE: 1,
        UNREADABLE_AUDIO: 1,
        EMPTY_AUDIO: 1,
    }
    assert report.rows == 9 == accounted(report)


def test_bad_row_reads_as_source_row_file_reason_detail(bad_dataset: Path) -> None:
    _, report = read_dataset(bad_dataset)
    missing = next(bad for bad in report.bad_rows if bad.reason == MISSING_FILE)

    assert str(missing).startswith(
        f"{bad_dataset / 'metadata.jsonl'} row 8 (audio/missing.wav): missing_file: "
    )
    assert str(report.bad_rows[0]).startswith(
        f"{bad_dataset / 'metadata.jsonl'} row 2: bad_syntax: "
    )


def test_bad_row_reason_is_a_closed_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown bad-row reason"):
        BadRow(tmp_path, 1, None, "odd", "detail")


def test_strict_mode_stops_at_the_first_bad_row(bad_dataset: Path) -> None:
    with pytest.raises(DataError, match=r"metadata\.jsonl row 2: bad_syntax: .*strict mode"):
        read_dataset(bad_dataset, strict=True)


def test_strict_mode_names_the_audio_file(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav")
    write_jsonl(tmp_path, [row("a.wav"), row("gone.wav")])
    with pytest.raises(
        DataError, match=r"row 2 \(gone\.wav\): missing_file: .*fix the row or run without strict"
    ):
        read_dataset(tmp_path, strict=True)


def test_wrong_json_shapes_are_syntax_errors(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav")
    write_jsonl(
        tmp_path, [row("a.wav"), "[1, 2]", row("a.wav", text=7), row("a.wav", speaker=["x"])]
    )

    _, report = read_dataset(tmp_path)

    assert [(bad.row, bad.reason) for bad in report.bad_rows] == [
        (2, BAD_SYNTAX),
        (3, BAD_SYNTAX),
        (4, BAD_SYNTAX),
    ]


def test_csv_manifest_with_quotes_extra_columns_and_line_numbers(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav")
    write_audio(tmp_path, "b.wav")
    write_csv(
        tmp_path,
        ["file_name", "text", "speaker", "split", "accent"],
        [
            ["a.wav", " Hello, world ", "s1", "train", "scottish"],
            ["b.wav", "", "s2", "train", ""],
            ["b.wav", "two fields"],
            ["b.wav", "fine", "", "", "irish"],
        ],
    )

    utterances, report = read_dataset(tmp_path)

    first, last = utterances
    assert (first.text, first.speaker, first.split, first.row) == ("Hello, world", "s1", "train", 2)
    assert first.extra == {"accent": "scottish"}
    assert (last.speaker, last.split, last.row) == (None, None, 5)
    assert [(bad.row, bad.reason) for bad in report.bad_rows] == [(3, EMPTY_TEXT), (4, BAD_SYNTAX)]
    assert report.source == tmp_path / "metadata.csv"


def test_csv_multiline_record_keeps_line_numbers(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav")
    (tmp_path / "metadata.csv").write_text('file_name,text\na.wav,"two\nlines"\n\na.wav,next\n')

    utterances, _ = read_dataset(tmp_path)

    assert [(u.row, u.text) for u in utterances] == [(2, "two\nlines"), (5, "next")]


def test_encoding_errors(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav")
    (tmp_path / "metadata.jsonl").write_bytes(
        b'{"file_name": "a.wav", "text": "caf\xe9"}\n{"file_name": "a.wav", "text": "ok"}\n'
    )
    _, report = read_dataset(tmp_path)
    assert [(bad.row, bad.reason) for bad in report.bad_rows] == [(1, BAD_SYNTAX)]

    (tmp_path / "metadata.jsonl").unlink()
    (tmp_path / "metadata.csv").write_bytes(b"file_name,text\na.wav,caf\xe9\n")
    with pytest.raises(DataError, match=r"metadata\.csv is not UTF-8 text"):
        read_dataset(tmp_path)


def test_jsonl_fields_extra_columns_and_header_duration(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.flac", seconds=0.25)
    write_jsonl(
        tmp_path,
        [
            row(
                "a.flac",
                text="  Keep CASE, punctuation!  ",
                speaker=1089,
                split="dev",
                duration=0.3,
                lang="en",
            )
        ],
    )

    (utterance,), report = read_dataset(tmp_path)

    assert utterance.text == "Keep CASE, punctuation!"
    assert utterance.speaker == "1089" and utterance.split == "dev"
    assert utterance.duration == pytest.approx(0.25)
    assert utterance.extra == {"lang": "en"}
    assert utterance.audio_path == tmp_path / "a.flac"
    assert report.warnings == []


def test_duration_column_disagreeing_with_header_is_a_warning_not_a_bad_row(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav", seconds=0.5)
    write_audio(tmp_path, "b.wav", seconds=0.5)
    write_jsonl(tmp_path, [row("a.wav", duration=2.0), row("b.wav", duration="long")])

    utterances, report = read_dataset(tmp_path)

    assert [u.duration for u in utterances] == [pytest.approx(0.5)] * 2
    assert report.bad_rows == []
    assert len(report.warnings) == 2
    assert "1 row(s), first row 1 (a.wav): column 2.000 s, header 0.500 s" in report.warnings[0]
    assert "not a number" in report.warnings[1]


def test_repeated_file_name_gets_unique_ids(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav")
    write_jsonl(
        tmp_path, [row("a.wav", text="one"), row("a.wav", text="two"), row("a.wav", text="three")]
    )

    utterances, report = read_dataset(tmp_path)

    assert [u.id for u in utterances] == ["a.wav", "a.wav#2", "a.wav#3"]
    assert len(report.warnings) == 1
    assert "file_name repeats an earlier row" in report.warnings[0]
    assert "2 row(s), first row 2 (a.wav)" in report.warnings[0]


@pytest.fixture
def labelled_dataset(tmp_path: Path) -> Path:
    """Six rows: splits train/test, speakers a/b/c, durations 0.1 to 0.6 s."""
    specs = [
        ("train", "a"),
        ("train", "b"),
        ("test", "a"),
        ("train", "c"),
        ("train", "a"),
        ("test", "b"),
    ]
    rows = []
    for index, (split, speaker) in enumerate(specs, start=1):
        name = f"u{index}.wav"
        write_audio(tmp_path, name, seconds=index / 10)
        rows.append(row(name, split=split, speaker=speaker))
    write_jsonl(tmp_path, rows)
    return tmp_path


def selected(folder: Path, **selection: Any) -> tuple[list[str], dict[str, int]]:
    utterances, report = read_dataset(folder, Selection(**selection))
    assert report.rows == accounted(report) == 6
    return [u.id for u in utterances], {
        name: count for name, count in report.filtered.items() if count
    }


@pytest.mark.parametrize(
    ("selection", "ids", "filtered"),
    [
        ({}, ["u1.wav", "u2.wav", "u3.wav", "u4.wav", "u5.wav", "u6.wav"], {}),
        ({"split": "train"}, ["u1.wav", "u2.wav", "u4.wav", "u5.wav"], {"split": 2}),
        ({"speakers": ["a", "c"]}, ["u1.wav", "u3.wav", "u4.wav", "u5.wav"], {"speakers": 2}),
        ({"split": "train", "speakers": ["a"]}, ["u1.wav", "u5.wav"], {"split": 2, "speakers": 2}),
        (
            {"min_duration": 0.25, "max_duration": 0.45},
            ["u3.wav", "u4.wav"],
            {"min_duration": 2, "max_duration": 2},
        ),
        (
            {"split": "train", "skip": 1, "max_utterances": 2},
            ["u2.wav", "u4.wav"],
            {"split": 2, "skip": 1, "max_utterances": 1},
        ),
        ({"split": "train", "skip": 3}, ["u5.wav"], {"split": 2, "skip": 3}),
    ],
)
def test_filters_and_their_counts(labelled_dataset: Path, selection, ids, filtered) -> None:
    assert selected(labelled_dataset, **selection) == (ids, filtered)


def test_skip_makes_disjoint_selections_of_one_split(labelled_dataset: Path) -> None:
    first, _ = selected(labelled_dataset, split="train", max_utterances=2)
    rest, _ = selected(labelled_dataset, split="train", skip=2)
    assert first + rest == ["u1.wav", "u2.wav", "u4.wav", "u5.wav"]


def test_audio_is_probed_only_for_selected_labels(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav")
    write_jsonl(
        tmp_path,
        [
            row("a.wav", split="test"),
            row("gone.wav", split="train"),
            row("a.wav", text="", split="train"),
        ],
    )

    _, report = read_dataset(tmp_path, Selection(split="test"))

    assert [(bad.row, bad.reason) for bad in report.bad_rows] == [(3, EMPTY_TEXT)]
    assert report.filtered["split"] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"skip": -1}, "greater than or equal to 0"),
        ({"max_utterances": 0}, "greater than or equal to 1"),
        ({"min_duration": -0.5}, "greater than or equal to 0"),
        ({"min_duration": 2.0, "max_duration": 1.0}, "must not exceed max_duration"),
        ({"speakers": []}, "at least 1 item"),
        ({"split": ""}, "at least 1 character"),
        ({"splits": "train"}, "Extra inputs are not permitted"),
    ],
)
def test_selection_validation(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        Selection(**fields)


def test_empty_selection_names_folder_and_selection(labelled_dataset: Path) -> None:
    with pytest.raises(
        DataError, match=r"no utterances left for selection \{'split': 'dev'\}.*'split': 6"
    ) as caught:
        read_dataset(labelled_dataset, Selection(split="dev"))
    assert str(labelled_dataset) in str(caught.value)


def test_all_rows_bad_is_an_empty_selection(tmp_path: Path) -> None:
    write_jsonl(tmp_path, [row("gone.wav")])
    with pytest.raises(DataError, match=r"selection all rows.*missing_file': 1"):
        read_dataset(tmp_path)


def test_folder_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no metadata\.jsonl or metadata\.csv"):
        read_dataset(tmp_path)
    with pytest.raises(DataError, match="no such dataset folder"):
        read_dataset(tmp_path / "absent")


def test_jsonl_is_preferred_over_csv_with_a_warning(tmp_path: Path) -> None:
    write_audio(tmp_path, "a.wav")
    write_jsonl(tmp_path, [row("a.wav", text="from jsonl")])
    write_csv(tmp_path, ["file_name", "text"], [["a.wav", "from csv"]])

    (utterance,), report = read_dataset(tmp_path)

    assert utterance.text == "from jsonl"
    assert report.warnings == [
        f"{tmp_path} has both metadata.jsonl and metadata.csv; using metadata.jsonl"
    ]


def test_report_is_json_able(bad_dataset: Path) -> None:
    _, report = read_dataset(bad_dataset)

    as_dict = json.loads(json.dumps(report.to_dict()))

    assert as_dict["rows"] == 9 and as_dict["kept"] == 1
    assert as_dict["bad_counts"][PATH_OUTSIDE_FOLDER] == 2
    assert as_dict["bad_rows"][-1] == {
        "source": str(bad_dataset / "metadata.jsonl"),
        "row": 10,
        "file_name": "audio/empty.wav",
        "reason": EMPTY_AUDIO,
        "detail": "the audio has no samples",
    }


@pytest.mark.shared_data
def test_real_an4_test_split() -> None:
    an4 = SHARED_DATA / "an4"
    if not (an4 / "metadata.jsonl").is_file():
        pytest.skip(f"shared AN4 data not found at {an4}")

    utterances, report = read_dataset(an4, Selection(split="test"))

    assert len(utterances) == 130 and report.bad_rows == []
    assert report.filtered["split"] == 948 and report.rows == 1078
    assert all(u.split == "test" and u.text and u.duration > 0 for u in utterances)
    assert len({u.id for u in utterances}) == 130
