"""inputs/abc_io.py: tunebooks, tunes, the music text of a tune, and reading notes (music21 and symusic)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import AbcParseError
from pipeline.core.notes import COLUMNS
from pipeline.inputs import abc_io, corpus
from pipeline.inputs.abc_io import AbcTune, tune_to_notes_symusic

SCALE = "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|"

# a chord, a note tied over the bar line, and a tempo of 60 quarter notes a minute
CHORDS = "X:3\nT:Chords\nM:3/4\nL:1/4\nQ:1/4=60\nK:G\n[GBd] A2-|A3|"

BROKEN = "X:2\nT:Broken\nM:4/4\nL:1/4\nK:C\nC[EG|F"  # a chord that never closes

TWO_TUNES = """%abc-2.1
% a tunebook header that belongs to no tune
X: 1
T: The First Reel
T: second title
R: reel
M: 4/4
L: 1/8
K: D
d2fd Adfd|

X:2
T:A Jig
M:6/8
L:1/8
K:Em % comment after the key
EGB e2f|
% trailing comment about the next section
"""


def test_split_tunebook_two_tunes():
    tunes = abc_io.split_tunebook(TWO_TUNES, source="book.abc")
    assert [t.number for t in tunes] == [1, 2]
    assert [t.title for t in tunes] == ["The First Reel", "A Jig"]
    assert [t.meter for t in tunes] == ["4/4", "6/8"]
    assert [t.key for t in tunes] == ["D", "Em"]
    assert all(t.source == "book.abc" for t in tunes)
    assert tunes[0].text.startswith("X: 1") and tunes[0].text.endswith("d2fd Adfd|")
    assert "%abc" not in tunes[0].text
    assert tunes[1].text.endswith("EGB e2f|")  # trailing comment dropped


def test_split_keeps_tunes_without_key_or_body():
    tunes = abc_io.split_tunebook("X:1\nT:Header only\n\nX:2\nT:Body\nK:C\nCDE|")
    assert [t.title for t in tunes] == ["Header only", "Body"]
    assert tunes[0].key is None and tunes[1].key == "C"
    assert abc_io.split_tunebook("no tunes here\n") == []


def test_broken_tune_in_the_middle():
    tunes = abc_io.split_tunebook("\n\n".join([SCALE, BROKEN, CHORDS]))
    assert [t.title for t in tunes] == ["Scale", "Broken", "Chords"]

    with pytest.raises(AbcParseError) as info:
        abc_io.tune_to_notes(tunes[1], "broken")
    assert "\n" not in str(info.value) and "Broken" in str(info.value)

    scale = abc_io.tune_to_notes(tunes[0], "scale")
    assert list(scale.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in scale.dtypes.items()} == COLUMNS
    assert scale["pitch"].tolist() == [60, 62, 64, 65, 67, 69, 71, 72]
    assert scale["start_beat"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert scale["start"].tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]  # no Q: -> 120 qpm
    assert (scale["end"] - scale["start"]).tolist() == [0.5] * 8
    assert set(scale["piece"]) == {"scale"} and set(scale["velocity"]) == {80}
    assert set(scale["track"]) == {0} and set(scale["program"]) == {0}

    chords = abc_io.tune_to_notes(tunes[2], "chords")
    assert chords["pitch"].tolist() == [67, 71, 74, 69]  # one row per chord pitch
    assert chords["start_beat"].tolist() == [0, 0, 0, 1]
    assert chords["end_beat"].tolist() == [1, 1, 1, 6]  # A2-|A3 is one note
    assert chords["start"].tolist() == [0, 0, 0, 1.0]  # Q:1/4=60
    assert chords["end"].iloc[-1] == 6.0


def test_tune_to_notes_counts_what_it_drops():
    notes = abc_io.tune_to_notes(AbcTune("X:1\nM:2/4\nL:1/4\nK:C\n\"Am\"C {d}E|"), "p")
    assert notes["pitch"].tolist() == [60, 64]
    assert notes.attrs["dropped"] == {"chord symbol": 1, "grace note": 1}
    with pytest.raises(AbcParseError, match="no notes"):
        abc_io.tune_to_notes(AbcTune("X:1\nM:2/4\nL:1/4\nK:C\nz2|"), "rests")


def test_read_abc_file(tmp_path):
    path = tmp_path / "latin.abc"
    path.write_bytes("X:7\nT:Caf\xe9 Polka\nM:2/4\nL:1/8\nK:G\nGABc|".encode("latin-1"))
    (tune,) = abc_io.read_abc_file(path)
    assert tune.title == "Café Polka" and tune.number == 7 and tune.source == str(path)

    empty = tmp_path / "empty.abc"
    empty.write_text("% just a comment\n", encoding="utf-8")
    with pytest.raises(AbcParseError, match="no ABC tunes"):
        abc_io.read_abc_file(empty)


def test_bundled_tune_parses():
    (tune,) = corpus.bundled_corpus_tunes("oneills1850", limit=1)
    notes = abc_io.tune_to_notes(tune, "oneills-1")
    assert len(notes) > 50 and notes["end"].gt(notes["start"]).all()


# --------------------------------------------------------------------------- the music of a tune (chars text)

ONEILL_STYLE = """X: 104
T: The Maids of Araglen
N:"Moderate" "collected by J.O'Neill"
B:O'Neill's 104
Z:Transcribed by someone
R:jig
M:6/8
Q:120
K:G
%  a comment about the tune
D|G2  (G/A/B/A/) G2 AB|cBAG E2 (DE)|\\
W:words that are not music
P:B
   egfe d2 z d|"Slow"g3 g2 |]"""


def test_music_text_keeps_what_plays_the_tune_in_a_fixed_order():
    text = abc_io.music_text(ONEILL_STYLE)
    assert text.splitlines()[:4] == ["R:jig", "M:6/8", "L:1/8", "K:G"]  # L: written out: ABC's default for 6/8
    assert text.splitlines()[4:] == ["D|G2 (G/A/B/A/) G2 AB|cBAG E2 (DE)|\\", "P:B", 'egfe d2 z d|"Slow"g3 g2 |]']
    assert abc_io.music_text(text) == text  # idempotent
    # the same notes as written, for both readers
    a = abc_io.tune_to_notes_symusic(ONEILL_STYLE, "a")
    b = abc_io.tune_to_notes_symusic(text, "b")
    assert a["pitch"].tolist() == b["pitch"].tolist() and a["start_beat"].tolist() == b["start_beat"].tolist()


@pytest.mark.parametrize("meter, unit", [("4/4", "1/8"), ("3/4", "1/8"), ("2/4", "1/16"), ("C", "1/8"),
                                         ("C|", "1/8"), ("6/8", "1/8"), ("5/8", "1/16"), ("none", "1/8"),
                                         (None, "1/8"), ("2+3/8", "1/16"), ("3/0", "1/8")])
def test_default_unit_length_follows_abc_2_1(meter, unit):
    assert abc_io.default_unit_length(meter) == unit


def test_music_text_edge_cases():
    assert abc_io.music_text("X:1\nT:t\nM:2/4\nK:D\nAB|") == "M:2/4\nL:1/16\nK:D\nAB|"
    assert abc_io.music_text("X:1\nM:3/4\nM:6/8 % changed\nL:1/4\nK:C\nC") == "M:6/8\nL:1/4\nK:C\nC"  # the last wins
    assert abc_io.music_text("X:1\nT:no key\nCDE|") == ""   # no K: line: all header, nothing that plays
    assert abc_io.music_text("") == ""


def test_with_x_line_makes_a_tunebook_entry():
    assert abc_io.with_x_line("M:2/4\nK:D\nAB|", 3, "Sample 2") == "X:3\nT:Sample 2\nM:2/4\nK:D\nAB|"
    assert abc_io.with_x_line("X:9\nK:D\nAB|", 3, "t") == "X:9\nK:D\nAB|"
    assert abc_io.with_x_line("K:D\nAB|") == "X:1\nK:D\nAB|"


SCALE = "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|"

# a chord, a note tied over the bar line, and a tempo of 60 quarter notes a minute
CHORDS = "X:3\nT:Chords\nM:3/4\nL:1/4\nQ:1/4=60\nK:G\n[GBd] A2-|A3|"


def rows(df, *cols):
    return [tuple(r) for r in df[list(cols)].itertuples(index=False)]


def test_scale_is_on_the_written_grid():
    notes = tune_to_notes_symusic(AbcTune(SCALE, number=1, title="Scale"), "scale")
    assert list(notes.columns) == list(COLUMNS) and (notes["piece"] == "scale").all()
    assert notes["pitch"].tolist() == [60, 62, 64, 65, 67, 69, 71, 72]
    # abc2midi starts every note a tick late; the reader puts onsets back on the beat
    np.testing.assert_allclose(notes["start_beat"], np.arange(8))
    np.testing.assert_allclose(notes["end_beat"], np.arange(1, 9))
    np.testing.assert_allclose(notes["start"], np.arange(8) * 0.5)  # no Q: field: 120 a minute
    assert notes.attrs["dropped"] == {} and notes.attrs["warnings"] == []


def test_chord_tie_and_tempo_as_music21_reads_them():
    fast = tune_to_notes_symusic(CHORDS, "c")
    assert rows(fast, "pitch", "start_beat", "end_beat") == [(67, 0, 1), (71, 0, 1), (74, 0, 1), (69, 1, 6)]
    np.testing.assert_allclose(fast["end"], fast["end_beat"])  # Q:1/4=60: one second a beat
    slow = abc_io.tune_to_notes(CHORDS, "c")
    assert rows(fast, "pitch", "start_beat", "end_beat") == rows(slow, "pitch", "start_beat", "end_beat")


def test_repeats_are_played_and_guitar_chords_are_not():
    notes = tune_to_notes_symusic('X:4\nT:Rep\nM:2/4\nL:1/4\nK:C\n|:"C"C "G"D:|E2|]', "r")
    assert notes["pitch"].tolist() == [60, 62, 60, 62, 64]
    assert notes["track"].nunique() == 1 and notes["start_beat"].tolist() == [0, 1, 2, 3, 4]


def test_voices_are_tracks_and_midi_program_is_kept():
    text = "X:5\nT:Two\nM:2/4\nL:1/4\nK:C\nV:1\n%%MIDI program 40\nc d|\nV:2\nC D|"
    notes = tune_to_notes_symusic(text, "v")
    assert sorted(rows(notes, "track", "program", "pitch")) == [(0, 40, 72), (0, 40, 74), (1, 0, 60), (1, 0, 62)]


def test_unreadable_tunes_raise_one_line(capfd):
    with pytest.raises(AbcParseError, match=r"tune X:7 'No key'.*abc2midi wrote no MIDI \(.*K: field"):
        tune_to_notes_symusic(AbcTune("X:7\nT:No key\nCDEF|", number=7, title="No key"), "k")
    with pytest.raises(AbcParseError, match="no pitched notes"):
        tune_to_notes_symusic("X:8\nT:Rests\nM:2/4\nL:1/4\nK:C\nz2|", "z")
    with pytest.raises(AbcParseError, match="empty tune text"):
        tune_to_notes_symusic("  \n", "e")
    # abc2midi's complaints are kept with the table, never printed
    notes = tune_to_notes_symusic("X:9\nT:Odd rhythm\nM:2/4\nL:1/4\nK:C\nC>D> E|F2|", "w")
    assert len(notes) == 4
    # numbered as lines of the tune as given (the reader adds a line of its own)
    assert notes.attrs["warnings"] == ["Error in line-char 6-5 : Cannot apply broken rhythm. Notes not equal durations"]
    assert capfd.readouterr() == ("", "")


def test_a_bundled_tune_reads():
    (tune,) = corpus.bundled_corpus_tunes("oneills1850", limit=1)
    fast = tune_to_notes_symusic(tune, "oneills-1")
    assert len(fast) > 50 and fast["end"].gt(fast["start"]).all()
