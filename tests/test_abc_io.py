"""ABC data layer: tunebooks, characters, note tables, MIDI, validity, engraving."""
from __future__ import annotations

import shutil

import pretty_midi
import pytest

from pipeline.measures import abc_eval

from pipeline.inputs import abc_io, corpus

from pipeline.codecs import chars as encodings

from pipeline.media import engrave
from pipeline.inputs.abc_io import AbcTune
from pipeline.codecs import END, START
from pipeline.core.errors import AbcParseError, ConfigError, EngraveError
from pipeline.core.notes import COLUMNS

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


@pytest.mark.parametrize("text", [SCALE, "T:a <b> c\nK:C\n<start>x<end>|", "", "é\t\n<"])
def test_chars_round_trip(text):
    tokens = encodings.encode_chars(text)
    assert tokens[0] == START and tokens[-1] == END and len(tokens) == len(text) + 2
    assert encodings.decode_chars(tokens) == text
    assert encodings.decode_chars(tokens + list("ignored after the end")) == text


def test_split_generated():
    a, b = "X:1\nK:C\nCDE|", "X:2\n<b>"
    assert encodings.split_generated(encodings.encode_chars(a) + encodings.encode_chars(b)) == [a, b]
    # an empty tune, then one cut off by the length limit
    assert encodings.split_generated([START, END, START, *"X:3"]) == ["", "X:3"]
    # a sample continued from a text primer starts without START; blank gaps are not tunes
    assert encodings.split_generated([*"K:C\nC", END, "\n", START, "D", END]) == ["K:C\nC", "D"]
    assert encodings.split_generated([]) == []


def test_check_tune_good():
    v = abc_eval.check_tune(SCALE)
    assert v.parses and v.to_midi and v.error is None
    assert (v.bars_total, v.bars_matching, v.meter, v.notes) == (2, 2, "4/4", 8)
    # an anacrusis completed by the last bar, and a bar split by a repeat sign
    pickup = abc_eval.check_tune("X:1\nT:P\nM:3/4\nL:1/8\nK:G\nD|G2 B2 d2|c4 z:|:A|G4 z|")
    assert pickup.parses and pickup.bars_total == 5 and pickup.bars_matching == 5


def test_check_tune_wrong_bar_lengths():
    short = abc_eval.check_tune("X:1\nT:Short\nM:4/4\nL:1/4\nK:C\nCDEF|GAB|cdef|gfed|")
    assert short.parses and short.to_midi
    assert (short.bars_total, short.bars_matching) == (4, 3)
    # music21 would re-bar an overlong bar into two "correct" ones; it must still count as wrong
    long = abc_eval.check_tune("X:1\nT:Long\nM:4/4\nL:1/4\nK:C\nCDEF|GABcd|cdef|")
    assert (long.bars_total, long.bars_matching) == (3, 2)
    # no meter: nothing to compare bars with
    free = abc_eval.check_tune("X:1\nT:Free\nM:none\nL:1/4\nK:C\nCDEF|GAB|")
    assert free.parses and free.meter == "none" and free.bars_matching == 0


@pytest.mark.parametrize("garbage", [
    "this is not ABC ][", "", "X:1\nK:C\n", "X:1\nL:1/0\nK:C\nC", "\x00\x01|:", "/etc/passwd",
    "X:1\nT:no key\nM:4/4\nL:1/4\nCDEF|",
])
def test_check_tune_garbage_never_raises(garbage):
    v = abc_eval.check_tune(garbage)
    assert not v.parses and not v.to_midi and v.error


def test_check_tune_gives_up_on_absurd_meter():
    v = abc_eval.check_tune("X:1\nM:451/8\nL:1/8\nK:C\nC8|", timeout_s=0.5)
    assert not v.parses and "gave up" in v.error


def test_bundled_corpus():
    tunes = corpus.bundled_corpus_tunes("oneills1850")
    assert len(tunes) > 100
    assert all(t.text.startswith("X:") and t.source.startswith("oneills1850/") for t in tunes)
    assert corpus.bundled_corpus_tunes("oneills1850", limit=5) == tunes[:5]
    assert len(corpus.bundled_corpus_tunes("default")) >= 2000
    with pytest.raises(ConfigError):
        corpus.bundled_corpus_tunes("no-such-corpus")


def test_bundled_tune_parses():
    (tune,) = corpus.bundled_corpus_tunes("oneills1850", limit=1)
    notes = abc_io.tune_to_notes(tune, "oneills-1")
    assert len(notes) > 50 and notes["end"].gt(notes["start"]).all()


def test_abc_to_midi_file(tmp_path):
    out = engrave.abc_to_midi_file(CHORDS, tmp_path / "sub" / "chords.mid")
    pm = pretty_midi.PrettyMIDI(str(out))
    notes = sorted((n.start, n.pitch, n.end) for inst in pm.instruments for n in inst.notes)
    assert notes == [(0, 67, 1), (0, 71, 1), (0, 74, 1), (1, 69, 6)]
    with pytest.raises(AbcParseError):
        engrave.abc_to_midi_file(BROKEN, tmp_path / "broken.mid")


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abcmidi not installed")
def test_abc2midi_reference(tmp_path):
    out = engrave.abc2midi_reference(SCALE, tmp_path / "scale.mid")
    pm = pretty_midi.PrettyMIDI(str(out))
    assert [n.pitch for inst in pm.instruments for n in inst.notes] == [60, 62, 64, 65, 67, 69, 71, 72]
    with pytest.raises(AbcParseError):
        engrave.abc2midi_reference("X:1\nT:no key field\n", tmp_path / "bad.mid")


@pytest.mark.skipif(engrave.available_engraver() is None, reason="neither abcm2ps nor lilypond installed")
def test_engrave_svg(tmp_path):
    out = engrave.engrave(CHORDS, tmp_path / "chords.svg")
    assert out.exists() and "<svg" in out.read_text(encoding="utf-8")[:2000]
    with pytest.raises(EngraveError):
        engrave.engrave("   ", tmp_path / "empty.svg")
    with pytest.raises(ConfigError):
        engrave.engrave(CHORDS, tmp_path / "x.svg", engine="pen")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("lilypond") is None, reason="lilypond not installed")
def test_engrave_lilypond_fallback(tmp_path):
    out = engrave.engrave(SCALE, tmp_path / "scale.svg", engine="lilypond")
    assert "<svg" in out.read_text(encoding="utf-8")[:2000]


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
