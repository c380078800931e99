"""How long does rendering audio take? FluidSynth against the built-in synth.

Usage::

    .venv/bin/python bench/bench_audio.py                 # the shared Chopin nocturne
    .venv/bin/python bench/bench_audio.py piece.mid ...   # your own files
    .venv/bin/python bench/bench_audio.py --repeats 5 --sample-rate 22050

For each MIDI file and synth it renders ``--repeats`` times to a temporary WAV
and reports the median wall-clock time as *seconds of compute per minute of
music* (lower is better; 60 would be real time). FluidSynth's time includes
starting the program and loading the SoundFont (about 150 MB for FluidR3_GM),
a fixed cost reported separately from the render of a one-note file. When no
file is given and the shared Chopin file is missing, a 60-second random piece
is built instead. Timings are printed, never asserted.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pretty_midi

from shared import NOCTURNES

from pipeline.media.audio import find_fluidsynth, find_soundfont, midi_to_audio

CHOPIN = NOCTURNES / "op09-no2-e-flat-major.mid"


def build_random_piece(path: Path, seconds: float = 60.0, seed: int = 0) -> Path:
    """Chords and a melody of random notes, so the benchmark runs without data."""
    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    t = 0.0
    while t < seconds:
        dur = float(rng.choice([0.25, 0.5, 1.0]))
        for pitch in rng.integers(48, 84, size=int(rng.integers(1, 4))):
            piano.notes.append(pretty_midi.Note(int(rng.integers(50, 110)), int(pitch), t, t + dur))
        t += dur
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


def time_render(midi: Path, out: Path, synth: str, sample_rate: int, repeats: int) -> tuple[float, float]:
    """(median seconds of wall-clock compute, seconds of audio written)."""
    times, seconds = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        result = midi_to_audio(midi, out, synth=synth, sample_rate=sample_rate)
        times.append(time.perf_counter() - start)
        seconds = result.seconds
    return statistics.median(times), seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("midi", nargs="*", type=Path, help="MIDI files (default: the Chopin nocturne)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-rate", type=int, default=44100)
    args = parser.parse_args(argv)
    # Many real files put tempo events on a non-zero track; pretty_midi warns each time it reads one.
    warnings.filterwarnings("ignore", message="Tempo, Key or Time signature", category=RuntimeWarning)

    tmp = Path(tempfile.mkdtemp(prefix="bench-audio-"))
    files = args.midi or [CHOPIN if CHOPIN.is_file() else build_random_piece(tmp / "random.mid")]
    synths = ["builtin"]
    if find_fluidsynth() and find_soundfont():
        synths.insert(0, "fluidsynth")
    else:
        print("FluidSynth or a SoundFont is missing: timing the built-in synth only")

    print(f"sample rate {args.sample_rate} Hz, median of {args.repeats} run(s), output WAV")
    if "fluidsynth" in synths:
        one_note = tmp / "one-note.mid"
        midi = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(program=0)
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.1))
        midi.instruments.append(piano)
        midi.write(str(one_note))
        fixed, _ = time_render(one_note, tmp / "one.wav", "fluidsynth", args.sample_rate, args.repeats)
        print(f"fluidsynth fixed cost (start + SoundFont load, one 0.1 s note): {fixed:.3f} s")

    for path in files:
        print(f"\n{path.name}")
        print(f"  {'synth':<11} {'music s':>8} {'compute s':>10} {'s per min of music':>19}")
        per_minute = {}
        for synth in synths:
            compute, music = time_render(path, tmp / f"{synth}.wav", synth, args.sample_rate, args.repeats)
            per_minute[synth] = 60 * compute / music
            print(f"  {synth:<11} {music:8.1f} {compute:10.3f} {per_minute[synth]:19.3f}")
        if len(per_minute) == 2:
            ratio = per_minute["fluidsynth"] / per_minute["builtin"]
            print(f"  fluidsynth / builtin = {ratio:.2f}x")


if __name__ == "__main__":
    main()
