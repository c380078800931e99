"""Stage 5: token sequences -> MIDI, audio and piano rolls.

Tokens of a timed encoding (``tsd``, ``remi``: :mod:`pipeline.codecs.tokenize`) carry
their own rhythm: they decode to notes at the times and with the durations the
model wrote, played at the corpus's median tempo (``timing.json``).

``names`` and ``pitch`` tokens carry pitch only. Their timing comes from the
training corpus: each onset draws an (inter-onset interval, duration) pair, in
beats, from the pairs observed in the dataset, at the corpus's median tempo. So
such music moves in the corpus's rhythms, drawn at random rather than learnt;
``fixed`` timing is there for those who want a metronomic rendering.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from pipeline.core.config import StageConfig
from pipeline.codecs import END, START, TimingModel, get_codec
from pipeline.core.errors import AbcParseError, ConfigError, PipelineError, RunError
from pipeline.core.fsutil import claim
from pipeline.inputs.midi_io import MIDI_SUFFIXES, notes_to_midi_file
from pipeline.measures.abc_eval import score_sample_folder
from pipeline.media import audio as audio_mod
from pipeline.media.pianoroll import piano_roll_png
from pipeline.store.rundir import read_timing
from pipeline.store.samples import is_samples_folder, read_samples

def tokens_to_notes(tokens: list[str], encoding: str, timing: TimingModel, seed: int = 0,
                    context: Sequence[str] = ()) -> pd.DataFrame:
    """Note tokens -> note table; markers and unknown tokens are an error, never silently dropped.

    Timed encodings decode with their own timing at ``timing.qpm`` (``timing.fixed_beats``
    and ``seed`` do not apply); ``context`` is what the tokens follow (a sample's primer),
    decoded with them and then left out (:func:`pipeline.codecs.tokenize.decode_continuation`).
    Other encodings draw their timing from ``timing`` with ``seed`` and ignore ``context``.
    """
    tokens = [t for t in tokens if t not in (START, END)]
    try:
        return get_codec(encoding).decode(tokens, timing, seed=seed, context=context)
    except ValueError as exc:
        raise ConfigError(f"cannot render token: {exc}") from None


@dataclass
class RenderConfig(StageConfig):
    """Options of the render stage; saved as ``render.json`` in a samples folder it renders."""

    audio: str = "wav"          # wav, flac, ogg or none
    piano_roll: bool = True
    fixed_beats: float = 0.0    # > 0: every onset lasts and is spaced by this many beats
    include_primer: bool = True  # prepend the primer so the continuation is heard in context

    def validate(self) -> None:
        super().validate()
        if self.audio not in AUDIO_FORMATS + ("none",):
            raise ConfigError(f"--audio must be one of {', '.join(AUDIO_FORMATS)} or none, not {self.audio!r}")
        if self.fixed_beats < 0:
            raise ConfigError("--fixed-beats must be >= 0")

    @property
    def audio_format(self) -> str | None:
        return None if self.audio == "none" else self.audio


AUDIO_FORMATS = ("wav", "flac", "ogg")


@dataclass
class RenderResult:
    """Files written for each sample (``midi``, ``audio``, ``piano_roll`` names, or ``error``)."""

    folder: str
    files: list[dict] = field(default_factory=list)


def render_samples(folder: str | Path, config: RenderConfig = RenderConfig(), *,
                   progress: Callable[[int], None] | None = None,
                   notice: Callable[[str], None] = lambda s: None) -> RenderResult:
    """Render every sample of a samples folder into ``sample_NNN.mid`` (+ audio, + ``.png``).

    The run the samples came from is found through the folder itself
    (:mod:`pipeline.store.samples`), so this works from any working directory.
    """
    config.validate()
    data = read_samples(folder)
    claim(data.folder, "samples")  # a samples folder of the tool's: it renders beside the samples, nowhere else
    codec = get_codec(data.encoding)
    if not codec.plays_notes:
        # sample_NNN.abc for every tune (its primer text included), validity.csv, and MIDI only
        # for the tunes that pass every check, each judged once with a time limit
        table = score_sample_folder(data.folder, include_primer=config.include_primer, notice=notice)
        make_midi = _chars_midi(data.folder, table)
    else:
        try:
            stats = read_timing(data.run)
        except RunError:
            raise RunError(f"{data.folder} was drawn from {data.run}, which is gone or has no timing.json; "
                           "render needs the run folder the samples came from") from None
        timing = TimingModel.from_stats(stats, config.fixed_beats)
        if config.fixed_beats and codec.timed:
            notice(f"--fixed-beats is ignored: {data.encoding} samples carry their own rhythm")
        seqs = [(data.primer if config.include_primer else []) + s for s in data.samples]
        context = [] if config.include_primer else data.primer
        make_midi = lambda i, path: notes_to_midi_file(  # noqa: E731
            tokens_to_notes(seqs[i], data.encoding, timing, seed=i, context=context), path, tempo=timing.qpm)
    result = RenderResult(folder=str(data.folder))
    for i in range(len(data.samples)):
        files = {}
        mid = data.path(i, ".mid")
        try:
            make_midi(i, mid)
            files["midi"] = mid.name
        except Exception as exc:  # a generated ABC tune that does not convert is data, not a crash
            files["error"] = f"{type(exc).__name__}: {exc}"[:200]
            notice(f"sample {i}: no MIDI ({files['error']})")
        if "midi" in files and (config.audio_format or config.piano_roll):
            files.update(render_media(mid, audio=config.audio_format, piano_roll=config.piano_roll, notice=notice))
        result.files.append(files)
        if progress:
            progress(1)
    config.save(data.folder / "render.json")
    return result


def _chars_midi(folder: Path, table: pd.DataFrame) -> Callable[[int, Path], Path]:
    """The MIDI ``score_sample_folder`` wrote for sample i, or an error with its reason."""
    def make(i: int, path: Path) -> Path:
        if table.at[i, "midi"]:
            return folder / table.at[i, "midi"]
        reasons = [table.at[i, "file_error"], table.at[i, "error"], "the tune does not pass the checks"]
        raise AbcParseError(next(str(r) for r in reasons if pd.notna(r) and r))
    return make


_notified: set[str] = set()


def render_media(midi: Path, *, audio: str | None, piano_roll: bool, out_dir: Path | None = None,
                 notice: Callable[[str], None] = lambda s: None) -> dict:
    """Audio and/or a piano roll of a MIDI file, in ``out_dir`` (default: beside it, for a MIDI file the
    tool wrote in a folder of its own); returns the file names written."""
    files, out = {}, out_dir or midi.parent
    if audio:
        if audio not in AUDIO_FORMATS:
            raise ConfigError(f"--audio must be one of {', '.join(AUDIO_FORMATS)}")
        res = audio_mod.midi_to_audio(midi, out / f"{midi.stem}.{audio}")
        if res.notice and res.notice not in _notified:
            _notified.add(res.notice)
            notice(res.notice)
        files["audio"] = Path(res.path).name
        files["audio_seconds"] = res.seconds
    if piano_roll:
        files["piano_roll"] = Path(piano_roll_png(midi, out / f"{midi.stem}.png")).name
    return files


# ------------------------------------------------------------------ the command

RENDERS = "renders"  # the folder of the tool's beside a user's MIDI files that holds their audio and piano rolls


@dataclass
class RenderPathsResult:
    """What :func:`render_paths` did: sequences rendered, files skipped (with reasons), folders."""

    rendered: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


def render_paths(paths: Sequence[str | Path], config: RenderConfig, *,
                 progress: Callable[[int], None] | None = None,
                 notice: Callable[[str], None] = lambda s: None) -> RenderPathsResult:
    """Render samples folders, MIDI files and folders of MIDI files; a bad MIDI is reported and skipped.

    A user's MIDI file is rendered into ``renders/`` beside it (a folder of the tool's), never over
    a ``song.wav`` or ``song.png`` of the user's next to ``song.mid``.

    Raises
    ------
    ConfigError
        A path is neither a samples folder nor MIDI, or nothing at all could be rendered.
    """
    config.validate()
    res = RenderPathsResult()
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"{path}: no such file or folder")
        if is_samples_folder(path):
            out = render_samples(path, config, progress=progress, notice=notice)
            res.rendered += len(out.files)
            res.folders.append(str(path))
            continue
        mids = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
        if not mids or (path.is_file() and path.suffix.lower() not in MIDI_SUFFIXES):
            raise ConfigError(f"{path}: neither a samples folder nor MIDI files")
        outs = {d: claim(d / RENDERS, "renders") for d in sorted({m.parent for m in mids})}
        for mid in mids:
            try:
                render_media(mid, audio=config.audio_format, piano_roll=config.piano_roll, out_dir=outs[mid.parent],
                             notice=notice)
            except PipelineError as exc:  # one bad file is reported and skipped
                res.skipped.append((str(mid), str(exc)))
                notice(f"skipped {mid}: {exc}")
                continue
            res.rendered += 1
            if progress:
                progress(1)
        res.folders += [str(d) for d in outs.values()]
    if not res.rendered:
        raise ConfigError(f"nothing rendered ({len(res.skipped)} files skipped)")
    return res
