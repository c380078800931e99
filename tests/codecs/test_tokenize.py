"""codecs/tokenize.py: the timed (miditok) encodings, through extract, train, generate, render and heatmap."""

import numpy as np
import pandas as pd
import pytest

from pipeline.codecs import (
    ENCODINGS,
    NOTE_ENCODINGS,
    build_vocabulary,
    encode_notes,
    tokenize,
    tokens_to_groups,
    tokens_to_pitches,
    transpose_tokens,
)
from pipeline.codecs.tokenize import MIDITOK_ENCODINGS as TIMED_ENCODINGS
from pipeline.core.errors import ConfigError
from pipeline.inputs.midi_io import midi_file_to_notes, notes_to_midi_file
from pipeline.stages.render import TimingModel, tokens_to_notes
from pipeline.store.dataset import load_dataset, read_notes

# (pitch, start, end) in seconds at 120 qpm: every time on the 12-steps-a-beat grid, durations on the
# duration grid (12 steps a beat up to 4 beats, 4 up to 12): a chord, a triplet, a sixteenth, a rest, a long note
QUANTISED = [(60, 0.0, 1.0), (64, 0.0, 1.0), (67, 0.0, 0.5), (72, 0.5, 0.5 + 1 / 6), (71, 0.5 + 1 / 6, 0.5 + 2 / 6),
             (69, 0.5 + 2 / 6, 1.0), (48, 1.0, 3.0), (74, 1.125, 1.25), (76, 4.0, 4.5), (43, 4.0, 8.5), (79, 4.0, 4.25)]

COLS = ["pitch", "start_beat", "end_beat"]


def quantised_notes(tmp_path) -> pd.DataFrame:
    """QUANTISED written with 480 ticks a beat (pretty_midi's default 220 cannot hold a third of a beat)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120, resolution=480)
    inst = pretty_midi.Instrument(program=0)
    inst.notes = [pretty_midi.Note(velocity=90, pitch=p, start=s, end=e) for p, s, e in QUANTISED]
    pm.instruments.append(inst)
    pm.write(str(tmp_path / "q.mid"))
    notes, _ = midi_file_to_notes(tmp_path / "q.mid")
    return notes


@pytest.mark.parametrize("encoding", TIMED_ENCODINGS)
def test_quantised_midi_round_trips_exactly(tmp_path, encoding):
    notes = quantised_notes(tmp_path)
    tokens = encode_notes(notes, encoding)
    back = tokenize.decode(tokens, encoding, qpm=120)
    want = notes.sort_values(["start_beat", "pitch"])[COLS].reset_index(drop=True)
    pd.testing.assert_frame_equal(back[COLS].reset_index(drop=True), want, check_dtype=False, atol=1e-9)
    # seconds at the given tempo, one velocity, one track
    assert np.allclose(back["start"], back["start_beat"] * 0.5) and back["track"].eq(0).all()
    # and through a MIDI file written by the project's writer, read by its reader
    again, _ = midi_file_to_notes(notes_to_midi_file(back, tmp_path / "back.mid", tempo=120))
    assert encode_notes(again, encoding) == tokens


def test_chord_notes_follow_each_other_with_no_time_between(tmp_path):
    tokens = encode_notes(quantised_notes(tmp_path), "tsd")
    assert tokens[:6] == ["Pitch_60", "Duration_2.0.12", "Pitch_64", "Duration_2.0.12", "Pitch_67",
                          "Duration_1.0.12"]
    assert tokens[6] == "TimeShift_1.0.12"
    assert tokens_to_groups(tokens, "tsd")[0] == [60, 64, 67]
    assert tokens_to_pitches(tokens, "tsd")[:4] == [60, 64, 67, 72]
    remi = encode_notes(quantised_notes(tmp_path), "remi")
    assert remi[:3] == ["Bar_None", "Position_0", "Pitch_60"]
    assert tokens_to_groups(remi, "remi") == tokens_to_groups(tokens, "tsd")


def test_token_times_follow_the_decoders(tmp_path):
    notes = quantised_notes(tmp_path)
    for enc in TIMED_ENCODINGS:
        tokens = encode_notes(notes, enc)
        onsets = [t for tok, t in zip(tokens, tokenize.token_times(tokens)) if tok.startswith("Pitch_")]
        assert onsets == pytest.approx(sorted(notes["start_beat"]))


def test_transpose_keeps_the_rhythm_and_refuses_to_leave_the_piano():
    tokens = ["Pitch_60", "Duration_1.0.12", "TimeShift_0.6.12", "Pitch_107", "Duration_0.3.12"]
    assert transpose_tokens(tokens, "tsd", -2) == ["Pitch_58", "Duration_1.0.12", "TimeShift_0.6.12",
                                                   "Pitch_105", "Duration_0.3.12"]
    assert transpose_tokens(tokens, "tsd", 2) is None  # 109 is past the top key (108)
    assert transpose_tokens(tokens, "tsd", 0) == tokens


def test_vocabulary_is_the_tokenizers_whole_vocabulary():
    assert set(TIMED_ENCODINGS) <= set(NOTE_ENCODINGS) <= set(ENCODINGS)
    for enc in TIMED_ENCODINGS:
        v = build_vocabulary([], enc)
        assert v.tokens == tokenize.vocabulary(enc) and "PAD_None" not in v.index
        assert {"Pitch_21", "Pitch_108", "Duration_0.1.12", "Duration_12.0.4"} <= set(v.index)
    assert "TimeShift_0.1.12" in build_vocabulary([], "tsd").index and "Bar_None" in build_vocabulary([], "remi").index


def test_decoding_bad_or_partial_tokens():
    with pytest.raises(ValueError, match="not tsd tokens"):
        tokenize.decode(["Pitch_60", "C4"], "tsd")
    with pytest.raises(ConfigError, match="cannot render"):
        tokens_to_notes(["E4"], "tsd", TimingModel(np.array([[1.0, 1.0]])))
    assert tokenize.decode([], "tsd").empty
    # a Pitch with no Duration gives no note, and MidiTok counts it as an error
    out = tokenize.decode(["Pitch_60", "Pitch_62", "Duration_1.0.12"], "tsd")
    assert out["pitch"].tolist() == [62]
    assert tokenize.token_errors(["Pitch_60", "Duration_1.0.12"], "tsd") == 0.0


def test_continuation_drops_its_context_and_keeps_the_bar_phase():
    context = ["Pitch_60", "Duration_1.0.12", "TimeShift_4.0.4", "TimeShift_1.0.12", "Pitch_62"]
    tokens = ["Duration_0.6.12", "TimeShift_0.6.12", "Pitch_64", "Pitch_67", "Duration_1.0.12"]
    out = tokenize.decode_continuation(context, tokens, "tsd", qpm=60)
    # the Duration that opens the sample belongs to the primer's last Pitch: no note of its own here;
    # 64 has no Duration (67's comes after it), so only 67 sounds, at beat 5.5 = bar 2, beat 1.5
    assert out["pitch"].tolist() == [67]
    assert out["start_beat"].tolist() == [1.5] and out["start"].tolist() == [1.5]
    # a Pitch of the context that made no note (no Duration after it) takes no note of the continuation
    out = tokenize.decode_continuation(["Pitch_50", "TimeShift_1.0.12", "Pitch_60", "Duration_1.0.12"],
                                       ["TimeShift_1.0.12", "Pitch_62", "Duration_1.0.12"], "tsd")
    assert out["pitch"].tolist() == [62] and out["start_beat"].tolist() == [2.0]


def test_rendering_uses_the_tokens_own_timing(tmp_path):
    tokens = encode_notes(quantised_notes(tmp_path), "tsd")
    a = tokens_to_notes(tokens, "tsd", TimingModel(np.array([[0.25, 0.5]]), qpm=120), seed=1)
    b = tokens_to_notes(tokens, "tsd", TimingModel(np.array([[3.0, 0.1]]), qpm=120, fixed_beats=1.0), seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert a.groupby("start_beat").size().max() == 3  # the chords sound together


def test_extract_writes_the_timed_encodings(tiny_dataset):
    notes = read_notes(tiny_dataset)
    for enc in TIMED_ENCODINGS:
        ds = load_dataset(tiny_dataset, enc)
        assert len(ds.vocab) == len(tokenize.vocabulary(enc))
        for piece, tokens in ds.sequences.items():
            assert tokens_to_pitches(tokens, enc) == tokens_to_pitches(
                encode_notes(notes[notes["piece"] == piece], "pitch"), "pitch")


@pytest.mark.slow
def test_train_generate_render_heatmap_on_tsd(tiny_train_config, tiny_dataset, tmp_path):
    from pipeline.codecs.tokenize import TIMED_FEATURES
    from pipeline.commands import generate as generate_command
    from pipeline.stages.generate import GenerateConfig
    from pipeline.stages.heatmap import HeatmapConfig, heatmap, sequence_features
    from pipeline.stages.train import train

    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, encoding="tsd", window=12, transpose=1, epochs=1), run)
    res = generate_command.run(run, GenerateConfig(count=2, length=40, seed=0), [1.0])
    folder = res.temperatures[0].folder
    assert res.temperatures[0].midi_files == 2
    mid, _ = midi_file_to_notes(f"{folder}/sample_000.mid")
    assert len(mid) > 0
    feats = sequence_features(["Bar_None", "Position_6", "Pitch_60", "Duration_1.0.12", "Pitch_64",
                               "Duration_1.0.12"], "remi")
    assert tuple(feats) == TIMED_FEATURES and feats["chord_note"].tolist() == [0, 0, 0, 0, 1, 0]
    assert feats["beat_in_bar"][2] == 0.5 and feats["duration"][-1] == 1.0
    out = heatmap(run, HeatmapConfig(sample=folder), tmp_path / "hm")
    assert out["pictures"] and "is_pitch" in out["features"]
