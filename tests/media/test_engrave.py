"""media/engrave.py: ABC -> MIDI and sheet music."""
from __future__ import annotations

import shutil

import pretty_midi
import pytest

from pipeline.core.errors import AbcParseError, ConfigError, EngraveError
from pipeline.media import engrave

SCALE = "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|"

# a chord, a note tied over the bar line, and a tempo of 60 quarter notes a minute
CHORDS = "X:3\nT:Chords\nM:3/4\nL:1/4\nQ:1/4=60\nK:G\n[GBd] A2-|A3|"

BROKEN = "X:2\nT:Broken\nM:4/4\nL:1/4\nK:C\nC[EG|F"  # a chord that never closes


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
