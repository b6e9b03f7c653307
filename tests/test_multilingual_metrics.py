"""Scoring per language: Whisper's basic normalizer, CER for languages without spaces, MER for
code-switched text — against values counted by hand."""

from __future__ import annotations

import pytest

from clasr.metrics.text import default_normalizer, get_normalizer, whisper_basic_normalize
from clasr.metrics.wer import corpus_score, default_metric, mixed_units, score_utterance


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Größe: 3,5 Meter! (lacht) «Très» bien.", "größe 3 5 meter très bien"),  # brackets dropped, accents kept
        ("你好，世界。", "你好 世界"),  # CJK punctuation becomes a space
        ("Қазақстан — менің Отаным!", "қазақстан менің отаным"),
        ("It's [noise] O'Brien", "it s o brien"),  # unlike English: apostrophes split
    ],
)
def test_whisper_basic_normalizer(text: str, expected: str) -> None:
    assert whisper_basic_normalize(text) == expected


def test_defaults_by_language() -> None:
    assert default_normalizer("en") == "whisper_english" and default_normalizer(None) == "whisper_english"
    assert default_normalizer("en", english="spelled") == "spelled"
    assert default_normalizer("de") == default_normalizer("zh") == default_normalizer("auto") == "whisper_basic"
    assert [default_metric(code) for code in ("zh", "ja", "th", "lo", "my", "km", "yue")] == ["cer_nospace"] * 7
    assert default_metric("de") == default_metric("en") == default_metric("auto") == "wer"


def test_chinese_is_scored_by_characters() -> None:
    # 今天天气很好 vs 今天天器好: one substitution (气→器), one deletion (很); 6 reference characters.
    # The hypothesis' space (from the comma) does not count: CER without spaces.
    normalize = get_normalizer("whisper_basic")
    score, ref, hyp = score_utterance("今天天气很好。", "今天，天器好", normalize)
    assert (ref, hyp) == ("今天天气很好", "今天 天器好")
    assert (score.ref_chars_nospace, score.char_errors_nospace) == (6, 2)
    assert (score.ref_words, score.word_errors) == (1, 2)  # WER is meaningless here: 1 "word" vs 2
    assert corpus_score([score]).cer_nospace == pytest.approx(2 / 6)


def test_mixed_error_rate_counts_cjk_characters_and_other_words() -> None:
    assert mixed_units("我想 book 一个room") == ["我", "想", "book", "一", "个", "room"]
    assert mixed_units("東京タワー へ go") == ["東", "京", "タ", "ワ", "ー", "へ", "go"]
    # reference units: 我 想 订 一 个 hotel room (7); hypothesis: 我 想 定 一 个 hotel (6)
    # → 订→定 substitution, room deleted: 2 errors / 7 units.
    score, _, _ = score_utterance("我想订一个 hotel room", "我想定一个hotel", get_normalizer("none"))
    assert (score.ref_mixed, score.mixed_errors) == (7, 2)
    second, _, _ = score_utterance("see you 明天", "see you 明天 bye", get_normalizer("none"))  # 1 insertion / 4
    assert corpus_score([score, second]).mer == pytest.approx(3 / 11)
    english, _, _ = score_utterance("the cat sat", "the cat sat down", get_normalizer("none"))
    assert (english.ref_mixed, english.mixed_errors) == (english.ref_words, english.word_errors)  # MER = WER


def _cell(wer: float, metric: str | None = None, rate: float | None = None) -> dict:
    cell = {"wer": wer, "cer": wer / 2, "cer_nospace": wer / 3, "mer": wer, "wer_ci95": [wer, wer]}
    return {**cell, "metric": metric, "error_rate": rate} if metric else cell


def test_tables_name_each_sets_metric() -> None:
    from clasr.report.markdown import matrix_markdown
    from clasr.report.results import build_matrix, matrix_csv
    from clasr.report.show import matrix_table

    rows = [{"label": label, "cells": {"test/de": _cell(w, "wer", w), "general/zh": _cell(0.9, "cer_nospace", c)}}
            for label, w, c in (("foundation", 0.30, 0.10), ("after de", 0.20, 0.15))]
    matrix = build_matrix(rows, ["de"], ["zh"], [])
    assert matrix["metrics"] == {"de": "wer", "general:zh": "cer_nospace"}
    table = matrix_markdown(matrix).splitlines()
    assert table[0] == "| row | de [wer] | general:zh [cer_nospace] |"
    assert table[2:] == ["| foundation | 30.00 | 10.00 |", "| after de | 20.00 | 15.00 |"]
    assert matrix_csv(matrix, "error_rate").splitlines()[0] == "row,de [wer],general:zh [cer_nospace]"
    assert "Error-rate matrix (each set's metric in brackets" in matrix_table(matrix).title
    # English-only runs, and cells written before sets had metrics, keep their WER tables
    old = build_matrix([{"label": "foundation", "cells": {"test/an4": _cell(0.4)}}], ["an4"], [], [])
    assert old["metrics"] == {"an4": "wer"} and old["error_rate"] == [[0.4]]
    assert matrix_markdown(old).splitlines()[0] == "| row | an4 |"
