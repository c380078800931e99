"""media/audio.py: MIDI -> audio (fluidsynth or the built-in synth), audio statistics."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.core.errors import AudioError, ConfigError, MidiReadError, PipelineError
from pipeline.media import audio
from pipeline.media.audio import audio_stats, find_soundfont, midi_to_audio, trim_tail

#: The rendered audio may run past the MIDI's end by the kept release tail
#: (1 s by default) and never ends before the last note does.
DURATION_TOLERANCE = 1.5

#: About -60 dBFS; a render that is all silence (wrong SoundFont, no notes) is far below.
SILENCE_RMS = 1e-3

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None,
    reason="the fluidsynth program is not installed (apt-get install fluidsynth fluid-soundfont-gm)",
)


def assert_audible_three_seconds(path: Path) -> dict:
    stats = audio_stats(path)
    assert 3.0 <= stats["seconds"] <= 3.0 + DURATION_TOLERANCE, stats
    assert stats["rms"] > SILENCE_RMS, stats
    assert stats["peak"] < 1.0, stats  # headroom kept, nothing clipped
    return stats


@needs_fluidsynth
def test_fluidsynth_renders_wav_of_the_midi_length(three_seconds: Path, tmp_path: Path) -> None:
    if find_soundfont() is None:
        pytest.skip("no SoundFont found (apt-get install fluid-soundfont-gm or set $MUSICRNN_SOUNDFONT)")
    result = midi_to_audio(three_seconds, tmp_path / "out.wav", synth="fluidsynth", sample_rate=22050)
    assert result.synth == "fluidsynth"
    assert result.notice is None
    assert result.sample_rate == 22050
    stats = assert_audible_three_seconds(result.path)
    assert stats["sample_rate"] == 22050 and stats["channels"] == result.channels == 2
    assert result.seconds == pytest.approx(stats["seconds"])


def test_builtin_synth_renders_wav_of_the_midi_length(three_seconds: Path, tmp_path: Path) -> None:
    result = midi_to_audio(three_seconds, tmp_path / "out.wav", synth="builtin")
    assert result.synth == "builtin"
    assert result.notice is None  # asked for explicitly, so nothing to explain
    stats = assert_audible_three_seconds(result.path)
    assert stats["peak"] == pytest.approx(audio.PEAK, abs=1e-3)  # peak-normalised


def test_auto_falls_back_to_builtin_with_one_notice(
    three_seconds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio, "find_fluidsynth", lambda: None)
    result = midi_to_audio(three_seconds, tmp_path / "out.wav")
    assert result.synth == "builtin"
    assert result.notice is not None and "\n" not in result.notice
    assert "fluidsynth" in result.notice and "built-in" in result.notice
    assert_audible_three_seconds(result.path)


def test_asking_for_missing_fluidsynth_is_an_error(
    three_seconds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio, "find_fluidsynth", lambda: None)
    with pytest.raises(AudioError, match="fluidsynth"):
        midi_to_audio(three_seconds, tmp_path / "out.wav", synth="fluidsynth")


@pytest.mark.parametrize("synth", ["builtin", pytest.param("fluidsynth", marks=needs_fluidsynth)])
def test_flac_output(synth: str, three_seconds: Path, tmp_path: Path) -> None:
    if synth == "fluidsynth" and find_soundfont() is None:
        pytest.skip("no SoundFont found")
    result = midi_to_audio(three_seconds, tmp_path / "out.flac", synth=synth)
    assert soundfile.info(str(result.path)).format == "FLAC"
    assert_audible_three_seconds(result.path)


def test_unsupported_suffix_is_a_config_error(three_seconds: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.mp4"):
        midi_to_audio(three_seconds, tmp_path / "out.mp4", synth="builtin")


@pytest.mark.parametrize(
    "content",
    [b"this is not a MIDI file", b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10"],
    ids=["garbage", "truncated"],
)
def test_corrupt_midi_raises_one_line_midi_read_error(content: bytes, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    with pytest.raises(MidiReadError) as info:
        midi_to_audio(bad, tmp_path / "out.wav")
    assert isinstance(info.value, PipelineError)
    message = str(info.value)
    assert "\n" not in message and "bad.mid" in message


def test_midi_without_notes_is_an_error(write_midi, tmp_path: Path) -> None:
    empty = write_midi(tmp_path / "empty.mid", [])
    with pytest.raises(MidiReadError, match="no notes"):
        midi_to_audio(empty, tmp_path / "out.wav", synth="builtin")


def test_builtin_drums_only_is_silent_not_nan_and_says_so(write_midi, tmp_path: Path) -> None:
    drums = write_midi(tmp_path / "drums.mid", [(36, 0.0, 0.5), (38, 0.5, 1.0)], drums=True)
    result = midi_to_audio(drums, tmp_path / "out.wav", synth="builtin")
    stats = audio_stats(result.path)
    assert stats["peak"] == 0.0 and np.isfinite(stats["rms"])
    assert "2 of 2 notes are drums" in result.notice


def test_trim_tail_cuts_and_fades_but_never_pads() -> None:
    rate = 1000
    stereo = np.ones((5 * rate, 2), dtype=np.float32)
    out = trim_tail(stereo, rate, end_time=3.0, tail=1.0)
    assert out.shape == (4 * rate, 2)
    assert out[-1].max() == 0.0 and out[0].min() == 1.0  # faded at the cut only
    short = np.ones(2 * rate, dtype=np.float32)
    assert trim_tail(short, rate, end_time=3.0, tail=1.0) is short


def test_audio_stats_of_a_known_sine(tmp_path: Path) -> None:
    rate = 8000
    t = np.arange(2 * rate) / rate
    soundfile.write(str(tmp_path / "sine.wav"), 0.5 * np.sin(2 * np.pi * 440 * t), rate, subtype="FLOAT")
    stats = audio_stats(tmp_path / "sine.wav")
    assert stats["seconds"] == pytest.approx(2.0)
    assert stats["rms"] == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)
    assert stats["peak"] == pytest.approx(0.5, rel=1e-3)


def test_soundfont_env_var_wins_and_a_typo_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sf2 = tmp_path / "mine.sf2"
    sf2.write_bytes(b"RIFF")
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(sf2))
    assert find_soundfont() == sf2
    monkeypatch.setenv(audio.SOUNDFONT_ENV, str(tmp_path / "missing.sf2"))
    with pytest.raises(ConfigError, match="missing.sf2"):
        find_soundfont()
