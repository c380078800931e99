"""inputs/midi_io.py: reading MIDI files into note tables (against pretty_midi), bad files, writing."""

from pathlib import Path

import mido
import numpy as np
import pandas as pd
import pretty_midi
import pytest

from pipeline.codecs import encode_notes
from pipeline.core.errors import MidiReadError
from pipeline.inputs.midi_io import midi_file_to_notes, notes_to_midi_file, read_midi, read_score, ticks_to_seconds


def assert_same_notes(path):
    """symusic's note table of ``path`` equals pretty_midi's: pitch, velocity, program,
    onset and duration (1e-6 s, and beats to one tick), and the same grouping into tracks."""
    fast, fast_report = midi_file_to_notes(path)
    ref, ref_report = midi_file_to_notes(read_midi(path), piece=path.stem)  # pretty_midi object
    assert fast_report.dropped == ref_report.dropped and fast_report.notes == ref_report.notes
    key = ["start_beat", "pitch", "end_beat", "velocity"]
    a = fast.sort_values(key, kind="stable").reset_index(drop=True)
    b = ref.sort_values(key, kind="stable").reset_index(drop=True)
    assert len(a) == len(b)
    for col in ("piece", "pitch", "velocity", "program"):
        assert (a[col] == b[col]).all(), col
    tpq = read_score(path).ticks_per_quarter
    np.testing.assert_allclose(a["start"], b["start"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["end"] - a["start"], b["end"] - b["start"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["start_beat"], b["start_beat"], rtol=0, atol=1 / tpq)
    np.testing.assert_allclose(a["end_beat"], b["end_beat"], rtol=0, atol=1 / tpq)
    # track numbers may differ (pretty_midi also numbers note-less instruments); the grouping may not
    pairs = set(zip(a["track"], b["track"]))
    assert len(pairs) == a["track"].nunique() == b["track"].nunique()


def type0_file(path: Path) -> Path:
    """A type-0 file written with mido: note-offs as velocity-0 note-ons, overlapping notes."""
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    tr.append(mido.Message("note_on", note=60, velocity=80, time=0))
    tr.append(mido.Message("note_on", note=64, velocity=80, time=0))      # chord with 60
    tr.append(mido.Message("note_on", note=67, velocity=70, time=240))    # overlaps 60 and 64
    tr.append(mido.Message("note_on", note=60, velocity=0, time=240))     # velocity-0 note-off
    tr.append(mido.Message("note_on", note=64, velocity=0, time=0))
    tr.append(mido.Message("note_off", note=67, velocity=0, time=480))
    tr.append(mido.MetaMessage("end_of_track", time=0))
    mid.save(str(path))
    return path


def tempo_changes_file(path):
    """Type 1: a tempo track with three tempi, a piano and a violin track, a drum part."""
    mid = mido.MidiFile(type=1, ticks_per_beat=96)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=600000, time=0),
                           mido.MetaMessage("set_tempo", tempo=400000, time=500),
                           mido.MetaMessage("set_tempo", tempo=750000, time=700)])
    mid.tracks.append(meta)
    for channel, program, base in ((0, 0, 60), (1, 40, 72), (9, 0, 36)):
        tr = mido.MidiTrack([mido.Message("program_change", channel=channel, program=program, time=0)])
        for i in range(30):
            tr.append(mido.Message("note_on", channel=channel, note=base + i % 7, velocity=40 + i, time=0 if i == 0 else 7))
            tr.append(mido.Message("note_off", channel=channel, note=base + i % 7, velocity=0, time=41 + i))
        mid.tracks.append(tr)
    mid.save(str(path))
    return path


def test_agrees_with_pretty_midi_on_tiny_files(melody, write_pm, tmp_path):
    paths = [write_pm(tmp_path / f"m{k}.mid", melody(80, k), program=k * 10, drums=[(36, 0.0, 0.1)] if k == 0 else None)
             for k in range(4)]
    paths += [type0_file(tmp_path / "t0.mid"), tempo_changes_file(tmp_path / "tempi.mid")]
    for path in paths:
        assert_same_notes(path)


# the chopin fixture, as in test_e2e_chopin: in CI the shared files must be there, so a missing folder fails there
def test_agrees_with_pretty_midi_on_the_nocturnes(chopin):
    paths = sorted(chopin.glob("*.mid"))
    assert len(paths) == 5
    for path in paths:
        assert_same_notes(path)


def test_tempo_changes_give_seconds_and_beats(tmp_path):
    notes, report = midi_file_to_notes(tempo_changes_file(tmp_path / "tempi.mid"))
    assert report.dropped == {"drum track": 30} and report.tracks == 2
    assert set(notes["program"]) == {0, 40}
    # tick 500 at 0.6 s a beat of 96 ticks, then 200 ticks at 0.4 s a beat
    assert ticks_to_seconds(np.array([500, 700, 796]), np.array([0, 500, 700]),
                            np.array([600000, 400000, 750000]), 96) == pytest.approx(
        [500 / 96 * 0.6, 500 / 96 * 0.6 + 200 / 96 * 0.4, 500 / 96 * 0.6 + 200 / 96 * 0.4 + 0.75])


def test_reads_bytes_and_pretty_midi_objects(melody, write_pm, tmp_path):
    path = write_pm(tmp_path / "a.mid", melody(10, 1))
    from_path, _ = midi_file_to_notes(path)
    from_bytes, _ = midi_file_to_notes(path.read_bytes(), piece="a")
    from_pm, _ = midi_file_to_notes(read_midi(path.read_bytes()), piece="a")
    pd.testing.assert_frame_equal(from_bytes, from_path)
    pd.testing.assert_frame_equal(from_pm, from_path, atol=1e-9)
    assert read_midi(pm := pretty_midi.PrettyMIDI()) is pm


def test_restruck_pitch_keeps_each_note_length(write_pm, tmp_path):
    # a pitch struck again while it sounds: first note-off ends the first note (pretty_midi would end both)
    path = write_pm(tmp_path / "r.mid", [(60, 0.0, 1.0), (60, 0.5, 2.0)])
    notes, _ = midi_file_to_notes(path)
    np.testing.assert_allclose(notes[["start", "end"]], [[0.0, 1.0], [0.5, 2.0]], atol=1e-3)


@pytest.mark.parametrize("content, reason", [
    (b"", "file is empty or truncated"),
    (b"MThd\x00\x00\x00\x06\x00\x01", "file is empty or truncated"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x00\x60", "file is empty or truncated"),  # header, no tracks
    (b"hello, not midi", "not a MIDI file"),
    (b"\x00" * 100, "not a MIDI file"),
])
def test_bad_file_reasons(tmp_path, content, reason):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    for read in (read_score, read_midi):
        with pytest.raises(MidiReadError, match=reason) as err:
            read(path)
        assert str(err.value).startswith("bad.mid: ") and "\n" not in str(err.value)


def test_truncated_and_corrupt_files(write_pm, tmp_path):
    good = write_pm(tmp_path / "g.mid", [(60 + i, i * 0.5, i * 0.5 + 0.4) for i in range(20)]).read_bytes()
    for cut in (20, 40, len(good) - 3):
        with pytest.raises(MidiReadError, match="file is empty or truncated"):
            midi_file_to_notes(good[:cut])
    corrupt = bytearray(good)
    corrupt[corrupt.index(bytes([0x90, 60])) + 2] = 200  # a note-on velocity above 127
    with pytest.raises(MidiReadError, match="corrupt MIDI data"):
        midi_file_to_notes(bytes(corrupt))
    with pytest.raises(MidiReadError, match="cannot read the file"):
        midi_file_to_notes(tmp_path / "missing.mid")


def test_only_drum_notes(tmp_path):
    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(velocity=100, pitch=36, start=i / 4, end=i / 4 + 0.1) for i in range(8)]
    pm.instruments.append(drums)
    pm.write(str(tmp_path / "drums.mid"))
    with pytest.raises(MidiReadError, match=r"drums.mid: no pitched notes: only drum notes \(8 in drum tracks\)"):
        midi_file_to_notes(tmp_path / "drums.mid")


def test_type0_velocity0_noteoff_and_overlap(tmp_path):
    notes, _ = midi_file_to_notes(type0_file(tmp_path / "t0.mid"))
    assert sorted(notes["pitch"]) == [60, 64, 67]
    by = notes.set_index("pitch")
    # the velocity-0 note-on ends C4 at tick 480 = 0.5 s; G4 starts before C4 ends (overlap)
    assert by.loc[60, "end"] == pytest.approx(0.5)
    assert by.loc[67, "start"] == pytest.approx(0.25)
    assert encode_notes(notes, "names") == ["C4.E4", "G4"]


def test_drum_tracks_are_dropped_and_counted(write_pm, tmp_path):
    path = write_pm(tmp_path / "d.mid", [(60, 0, 1)], drums=[(36, 0, 0.1), (38, 0.5, 0.6)])
    notes, report = midi_file_to_notes(path)
    assert list(notes["pitch"]) == [60]
    assert report.dropped == {"drum track": 2}


@pytest.mark.parametrize("content", [b"", b"MThd\x00\x00\x00\x06\x00\x01", b"hello, not midi", b"\x00" * 100])
def test_bad_files_raise_named_error(tmp_path, content):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(MidiReadError) as err:
        midi_file_to_notes(path)
    assert "\n" not in str(err.value) and "bad.mid" in str(err.value)


def test_truncated_real_file(write_pm, tmp_path):
    good = write_pm(tmp_path / "g.mid", [(60 + i, i * 0.5, i * 0.5 + 0.4) for i in range(20)])
    cut = tmp_path / "cut.mid"
    cut.write_bytes(good.read_bytes()[:40])
    with pytest.raises(MidiReadError):
        midi_file_to_notes(cut)


def test_file_with_no_notes(write_pm, tmp_path):
    with pytest.raises(MidiReadError, match="no pitched notes"):
        midi_file_to_notes(write_pm(tmp_path / "e.mid", []))


def test_notes_midi_notes_round_trip(write_pm, tmp_path):
    notes, _ = midi_file_to_notes(write_pm(tmp_path / "a.mid", [(60, 0, 0.5), (62, 0.5, 1.5), (64, 0.5, 1.0)]))
    back, _ = midi_file_to_notes(notes_to_midi_file(notes, tmp_path / "b.mid"))
    cols = ["pitch", "velocity", "start", "end"]
    pd.testing.assert_frame_equal(back[cols], notes[cols], atol=2e-3)
