"""``cli.py generate``: samples at each temperature, then MIDI (note models) or the ABC checks,
sheet music and validity tables (encodings without notes: chars)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from pipeline.codecs import get_codec
from pipeline.measures.abc_eval import default_engrave_count, score_sample_folder, write_validity_summary
from pipeline.models.network import resolve_device
from pipeline.stages.generate import MAX_LENGTH, GenerateConfig, generate
from pipeline.stages.render import RenderConfig, render_samples
from pipeline.store.dataset import read_manifest
from pipeline.store.rundir import TrainConfig, load_checkpoint, read_run_config, resolve_run


from pipeline.models.network import model_from_checkpoint
def reads_music_text(dataset: str | Path) -> bool:
    """Whether a chars model's dataset holds tunes as :func:`pipeline.inputs.abc_io.music_text` (unknown: no)."""
    try:
        return read_manifest(dataset).get("config", {}).get("abc_header") == "music"
    except Exception:  # the dataset moved or was deleted: the primer is used as typed
        return False


@dataclass
class TemperatureResult:
    """One temperature of :func:`run`."""

    temperature: float
    folder: str
    lengths: list[int]
    midi_files: int = 0
    validity: object = None   # chars: the validity table (DataFrame)


@dataclass
class GenerateResult:
    run: str
    temperatures: list[TemperatureResult] = field(default_factory=list)
    validity_summary: object = None     # chars: DataFrame over temperatures
    summary_files: list[str] = field(default_factory=list)


def run(run_dir: str | Path | None, base: GenerateConfig, temperatures: Sequence[float], *,
        primer_text: str = "", render_midi: bool = True, engrave: bool = True,
        engrave_count: int | None = None, device: str = "auto", max_length: int = MAX_LENGTH,
        progress: Callable[[int], None] | None = None,
        on_total: Callable[[int, str, str], None] = lambda n, desc, unit: None,
        notice: Callable[[str], None] = lambda s: None,
        on_start: Callable[[str], None] = lambda s: None,
        on_temperature: Callable[[TemperatureResult], None] = lambda r: None) -> GenerateResult:
    """Draw ``base.count`` samples at each temperature, then render or check them.

    ``primer_text`` is what the user typed after ``--primer-tokens``: space-separated
    note tokens, or for chars models ABC text (``\\n`` for a newline) after ``<start>``.
    ``on_total(n, desc, unit)`` starts a progress bar that ``progress`` advances: the
    token steps of each temperature, then (chars) the tunes checked.
    Note models get MIDI files (``render_midi``); chars models get ``.abc`` files,
    MIDI and SVG sheet music for the playable tunes, ``validity.csv`` per temperature
    and ``samples/validity_summary.csv``/``.md`` across temperatures.
    """
    run_dir, picked = resolve_run(run_dir)
    if picked:
        on_start(f"using the latest run, {run_dir}")
    resolve_device(device)  # an absent --device is one line now, not after loading the run
    config = read_run_config(run_dir)
    codec = get_codec(TrainConfig.from_dict(config).encoding)
    primer = base.primer or ("tokens" if primer_text else codec.default_primer)
    tokens: tuple[str, ...] = ()
    if primer == "tokens":
        tokens = tuple(codec.primer_tokens(primer_text, music_text=reads_music_text(config.get("dataset", ""))))
        typed = codec.primer_tokens(primer_text)
        if tokens != tuple(typed):
            notice(f"primer written as the model reads tunes (R: M: L: K: and notes): {''.join(tokens[1:])!r}")
    base = replace(base, primer=primer, primer_tokens=tokens)
    base.validate(max_length)  # before loading anything: a typo in --length fails at once
    ckpt = load_checkpoint(run_dir, base.checkpoint)
    model = model_from_checkpoint(ckpt)
    result = GenerateResult(run=str(run_dir))
    validity = {}
    length = base.length or codec.default_length
    for t in temperatures or [codec.default_temperature]:
        on_total(length, f"sampling T={t:g}", "token")
        s = generate(run_dir, replace(base, temperature=t), device=device, max_length=max_length,
                     model=model, ckpt=ckpt, progress=progress)
        res = TemperatureResult(temperature=t, folder=str(s.folder), lengths=[len(x) for x in s.samples])
        if not codec.plays_notes:
            n_draw = 0 if not engrave else (default_engrave_count() if engrave_count is None else engrave_count or None)
            on_total(len(s.samples), f"checking T={t:g}", "tune")
            res.validity = validity[t] = score_sample_folder(s.folder, midi=render_midi, engrave_count=n_draw,
                                                             progress=progress, notice=notice)
        elif render_midi:
            rendered = render_samples(s.folder, RenderConfig(audio="none", piano_roll=False), notice=notice)
            res.midi_files = sum("midi" in f for f in rendered.files)
        result.temperatures.append(res)
        on_temperature(res)
    if validity:
        result.validity_summary, paths = write_validity_summary(validity, run_dir / "samples")
        result.summary_files = [str(p) for p in paths]
    return result
