"""Stage 4: token sequences -> MIDI (and audio and piano rolls where asked).

Note tokens carry pitch only. Timing comes from the training corpus: each
onset draws an (inter-onset interval, duration) pair, in beats, from the
pairs observed in the dataset (``timing.json``), played at the corpus's median
tempo. So generated music moves in the corpus's rhythms instead of a
metronomic stream of equal notes; ``fixed`` timing is there for those who want it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .encodings import END, START, tokens_to_groups
from .errors import ConfigError, RunError
from .generate import read_samples
from .midi_io import notes_to_midi_file
from .notes import normalise_note_table

MIN_IOI_SECONDS = 0.06  # well above any onset tolerance, so rendered chords stay chords


@dataclass
class TimingModel:
    """How to place onset groups in time.

    pairs : (n, 2) array of [inter-onset interval, duration] in beats.
    qpm : tempo in quarter notes per minute.
    fixed_beats : when > 0, every onset lasts and is spaced by this many beats.
    """

    pairs: np.ndarray
    qpm: float = 120.0
    velocity: int = 80
    fixed_beats: float = 0.0

    @classmethod
    def from_stats(cls, stats: dict, fixed_beats: float = 0.0) -> "TimingModel":
        return cls(np.asarray(stats.get("pairs") or [[0.5, 0.5]], float), float(stats.get("qpm", 120.0)),
                   int(stats.get("velocity", 80)), fixed_beats)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Onset intervals and durations in seconds, each shape (n,)."""
        spb = 60.0 / self.qpm
        if self.fixed_beats > 0:
            ioi = np.full(n, self.fixed_beats * spb)
            return ioi, ioi.copy()
        pick = self.pairs[rng.integers(0, len(self.pairs), n)]
        ioi = np.maximum(pick[:, 0] * spb, MIN_IOI_SECONDS)
        dur = np.maximum(pick[:, 1] * spb, MIN_IOI_SECONDS / 2)
        return ioi, dur


def groups_to_notes(groups: list[list[int]], timing: TimingModel, rng: np.random.Generator,
                    piece: str = "sample") -> pd.DataFrame:
    """Pitch groups (onset order) -> a one-track note table with drawn timing."""
    ioi, dur = timing.draw(len(groups), rng)
    starts = np.concatenate([[0.0], np.cumsum(ioi)[:-1]]) if len(groups) else np.zeros(0)
    spb = 60.0 / timing.qpm
    rows = [(piece, 0, 0, p, timing.velocity, s, s + d, s / spb, (s + d) / spb)
            for g, s, d in zip(groups, starts, dur) for p in g]
    return normalise_note_table(pd.DataFrame(rows, columns=[
        "piece", "track", "program", "pitch", "velocity", "start", "end", "start_beat", "end_beat"]))


def tokens_to_notes(tokens: list[str], encoding: str, timing: TimingModel, seed: int = 0) -> pd.DataFrame:
    """Note tokens -> note table; markers and unknown tokens are an error, never silently dropped."""
    tokens = [t for t in tokens if t not in (START, END)]
    try:
        groups = tokens_to_groups(tokens, encoding)
    except ValueError as exc:
        raise ConfigError(f"cannot render token: {exc}") from None
    return groups_to_notes(groups, timing, np.random.default_rng(seed))


def run_timing(run_dir: Path) -> dict:
    """The timing statistics saved in a run folder at training time."""
    path = Path(run_dir) / "timing.json"
    if not path.exists():
        raise RunError(f"{run_dir} has no timing.json; was it trained by this version of `train`?")
    return json.loads(path.read_text())


def render_samples(folder: str | Path, *, fixed_beats: float = 0.0, include_primer: bool = True,
                   audio: str | None = None, piano_roll: bool = False,
                   progress: Callable[[int], None] | None = None,
                   notice: Callable[[str], None] = lambda s: None) -> dict:
    """Render every sample of a ``samples.json`` folder.

    Parameters
    ----------
    folder : a folder written by ``generate``.
    fixed_beats : > 0 spaces every onset by this many beats instead of the corpus rhythms.
    include_primer : prepend the primer so the continuation is heard in context.
    audio : None, or an audio suffix ("wav", "flac", "ogg") to synthesise.
    piano_roll : also draw a PNG piano roll per sample.

    Returns
    -------
    dict with the folder and the list of files written per sample.
    """
    folder = Path(folder)
    data = read_samples(folder)
    encoding = data["encoding"]
    written: list[dict] = []
    if encoding == "chars":
        from .abc_eval import score_sample_folder

        # sample_NNN.abc for every tune (its primer text included), validity.csv, and MIDI only
        # for the tunes that pass every check, each judged once with a time limit
        table = score_sample_folder(folder, include_primer=include_primer, notice=notice)
        make_midi = _chars_midi(folder, table)
    else:
        timing = TimingModel.from_stats(run_timing(Path(data["run"])), fixed_beats)
        seqs = [(data["primer"] if include_primer else []) + s for s in data["samples"]]
        make_midi = lambda i, path: notes_to_midi_file(  # noqa: E731
            tokens_to_notes(seqs[i], encoding, timing, seed=i), path, tempo=timing.qpm)
    for i in range(len(data["samples"])):
        files = {}
        mid = folder / f"sample_{i:03d}.mid"
        try:
            make_midi(i, mid)
            files["midi"] = mid.name
        except Exception as exc:  # a generated ABC tune that does not convert is data, not a crash
            files["error"] = f"{type(exc).__name__}: {exc}"[:200]
            notice(f"sample {i}: no MIDI ({files['error']})")
        if "midi" in files and (audio or piano_roll):
            files.update(render_media(mid, audio=audio, piano_roll=piano_roll, notice=notice))
        written.append(files)
        if progress:
            progress(1)
    return {"folder": str(folder), "files": written}


def _chars_midi(folder: Path, table: pd.DataFrame) -> Callable[[int, Path], Path]:
    """The MIDI ``score_sample_folder`` wrote for sample i, or an error with its reason."""
    from .errors import AbcParseError

    def make(i: int, path: Path) -> Path:
        if table.at[i, "midi"]:
            return folder / table.at[i, "midi"]
        reasons = [table.at[i, "file_error"], table.at[i, "error"], "the tune does not pass the checks"]
        raise AbcParseError(next(str(r) for r in reasons if pd.notna(r) and r))
    return make


_notified: set[str] = set()


def render_media(midi: Path, *, audio: str | None, piano_roll: bool,
                 notice: Callable[[str], None] = lambda s: None) -> dict:
    """Audio and/or a piano roll beside a MIDI file; returns the file names written."""
    from . import audio as audio_mod
    from .pianoroll import piano_roll_png

    files = {}
    if audio:
        if audio not in ("wav", "flac", "ogg"):
            raise ConfigError("--audio must be wav, flac or ogg")
        res = audio_mod.midi_to_audio(midi, midi.with_suffix(f".{audio}"))
        if res.notice and res.notice not in _notified:
            _notified.add(res.notice)
            notice(res.notice)
        files["audio"] = Path(res.path).name
    if piano_roll:
        files["piano_roll"] = Path(piano_roll_png(midi, midi.with_suffix(".png"))).name
    return files
