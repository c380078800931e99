"""ABC tunes read through symusic's abc2midi (extract's ABC reader), against music21's reading."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.inputs import abc_io, corpus
from pipeline.inputs.abc_io import AbcTune, tune_to_notes_symusic
from pipeline.core.errors import AbcParseError
from pipeline.core.notes import COLUMNS

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
