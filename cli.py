"""musicrnn command line: each command parses options and calls ``pipeline.commands.<name>.run``.

Each command imports its pipeline modules inside its own function, on purpose: torch (~3 s),
music21 and MidiTok are heavy, and ``--help`` or ``extract`` must not pay for what ``train`` needs.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import fields
from pathlib import Path

import click

from pipeline.core.errors import PipelineError


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@contextlib.contextmanager
def known_errors(interrupted: str = "interrupted"):
    """Turn the pipeline's named errors into one clean line (exit 1).

    ``interrupted`` is what Ctrl-C (or SIGTERM) leaves behind, in the command's own
    words; a pipeline function that knows better raises ``Interrupted`` with the text.
    """
    from pipeline.core.errors import Interrupted

    try:
        yield
    except PipelineError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt as exc:
        raise click.ClickException(str(exc) if isinstance(exc, Interrupted) else interrupted) from None


class Progress:
    """A tqdm bar on stderr that a pipeline function starts (``start(total, desc)``) and advances.

    With ``log_every`` seconds and stderr not a terminal (a log file, a pipe), a plain line
    ``<desc>: <done>/<total> <unit> (<percent>)`` is written that often instead, so a long
    command run from a script still shows that it is alive ($MUSICRNN_PROGRESS_SECONDS overrides it).
    """

    def __init__(self, total: int = 0, desc: str = "", unit: str = "it", log_every: float = 0.0):
        import os

        self.bar = None
        self.unit = unit
        self.log_every = None if not log_every or sys.stderr.isatty() else \
            float(os.environ.get("MUSICRNN_PROGRESS_SECONDS") or log_every)
        if desc:
            self.start(total, desc)

    def start(self, total: int, desc: str, unit: str | None = None) -> None:
        import time

        from tqdm import tqdm

        if self.bar is not None:
            self.bar.close()
        self.unit = unit or self.unit
        self.desc, self.total, self.done, self.logged = desc, total, 0, time.monotonic()
        self.bar = tqdm(total=total or None, desc=desc, unit=self.unit, disable=None, file=sys.stderr, leave=False)

    def update(self, n: int = 1) -> None:
        import time

        if self.bar is None:
            self.start(0, "")
        self.bar.update(n)
        self.done += n
        if self.log_every is not None and time.monotonic() - self.logged >= self.log_every:
            self.logged = time.monotonic()
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            echo_err(f"{self.desc}: {self.done:,}{f'/{self.total:,}' if self.total else ''} {self.unit}{share}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def echo_err(line: str) -> None:
    click.echo(line, err=True)


def csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option("0.1.0", prog_name="musicrnn")
@click.pass_context
def main(ctx):
    """Train RNN/LSTM/GRU models on MIDI and ABC music, generate new pieces, and compare them.

    \b
    Typical session:
      python cli.py extract raw_midi/ --name nocturnes
      python cli.py train --data processed/nocturnes --cell gru --layers 4 --hidden 128
      python cli.py generate --run runs/nocturnes-gru-4x128 --count 4
      python cli.py render runs/nocturnes-gru-4x128/samples/t1-s0 --audio wav --piano-roll
    """
    from pipeline.core.procs import terminate_as_interrupt

    ctx.with_resource(terminate_as_interrupt())  # `kill PID` ends a command as Ctrl-C does: clean-up runs


# ------------------------------------------------------------------ extract
@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--name", help="Dataset name (folder under --out). Default: the first path's name, or the corpus name.")
@click.option("--out", default="processed", show_default=True, type=click.Path(path_type=Path))
@click.option("--corpus", "corpus_names", multiple=True,
              help="A corpus bundled with music21 (repeatable): bach-chorales (as MIDI) or an ABC collection, "
                   "e.g. oneills1850, ryansMammoth, airdsAirs, essenFolksong, folk.")
@click.option("--limit", type=int, default=60, show_default=True,
              help="How many scores of a bundled MIDI corpus to write out.")
@click.option("--onset-tolerance", type=float, default=0.02, show_default=True,
              help="Seconds within which notes count as one chord (raise for human-played files).")
@click.option("--val-fraction", type=float, default=0.2, show_default=True,
              help="Share of whole pieces held out for validation (at least one).")
@click.option("--split-seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=0, show_default=True, help="Parallel parsers; 0 = one per core.")
@click.option("--abc-header", type=click.Choice(["music", "full"]), default="music", show_default=True,
              help="ABC text for the chars encoding: 'music' keeps the R: M: L: K: fields and the notes "
                   "(titles, numbers, sources dropped); 'full' keeps each tune as written.")
@click.option("--frame-seconds", type=float, default=0.3, show_default=True,
              help="Piano-roll files (.mat, .pickle, .json): seconds a frame lasts (the files carry no tempo).")
def extract(paths, name, out, corpus_names, limit, onset_tolerance, val_fraction, split_seed, workers, abc_header,
            frame_seconds):
    """Parse MIDI/ABC files or folders (recursively) into processed/<name>/.

    With no PATH and no --corpus, the embedded default corpus is used: Bach chorales
    bundled with music21, written out as MIDI files under raw_midi/bach-chorales/.

    \b
    Example:
      python cli.py extract ../shared/data/chopin-nocturnes --name nocturnes
      python cli.py extract --corpus oneills1850 --name oneills
      python cli.py extract ../shared/data/polyphonic/jsb-chorales.mat --name jsb
    """
    from pipeline.commands import extract as extract_command
    from pipeline.stages.extract import ExtractConfig

    config = ExtractConfig(name=name or "", out=str(out), onset_tolerance=onset_tolerance,
                           val_fraction=val_fraction, split_seed=split_seed, workers=workers,
                           abc_header=abc_header, frame_seconds=frame_seconds)
    with known_errors("interrupted; nothing was written (an earlier dataset of that name is unchanged)"), \
            Progress() as bar:
        s = extract_command.run(list(paths), config, corpus=corpus_names, limit=limit, on_total=bar.start,
                            progress=bar.update, log=echo_err)
    tokens = ", ".join(f"{k} {v:,}" for k, v in s["tokens"].items())
    click.echo(f"extracted {s['files_ok']} files ({s['files_skipped']} skipped, {s['files_reused']} unchanged), "
               f"{s['pieces']} pieces, {s['notes']:,} notes; tokens: {tokens} -> {s['folder']}/")


# ------------------------------------------------------------------ train
def device_option(f):
    return click.option("--device", default="auto", show_default=True,
                        help="auto (CUDA, then Apple MPS, then CPU), cpu, cuda or mps.")(f)


def train_options(f):
    """Options shared by `train` and `grid` (grid accepts comma-separated lists)."""
    from pipeline.store.rundir import TrainConfig
    d = {fl.name: fl.default for fl in fields(TrainConfig)}
    opts = [
        click.option("--data", "dataset", type=click.Path(path_type=Path),
                     help="A processed dataset folder, e.g. processed/nocturnes. Default: the most recently "
                          "extracted one under processed/ (named in the first output line)."),
        click.option("--encoding", default=d["encoding"], show_default=True, help="frames (the notes sounding on a sixteenth grid: chords and rhythm; the benchmarks' piano rolls), names (the nocturne study's), pitch, chars (ABC), tsd or remi (MidiTok)."),
        click.option("--task", default=d["task"], show_default=True,
                     help="classify (softmax over tokens) or regress (next pitch as a number; needs --encoding pitch)."),
        click.option("--mode", default=d["mode"], show_default=True,
                     help="tbptt: pieces as parallel streams, the state carried from chunk to chunk, as generation "
                          "runs the model; windows: independent windows from a zero state (the nocturne study)."),
        click.option("--cell", default=d["cell"], show_default=True, help="rnn, lstm or gru."),
        click.option("--layers", default=str(d["layers"]), show_default=True, help="Recurrent layers."),
        click.option("--stack", default=d["stack"], show_default=True,
                     help="residual: each layer above the first adds its input to its output, so deep stacks "
                          "train; plain: layers simply stacked (nn.GRU's num_layers, the nocturne study)."),
        click.option("--hidden", default=str(d["hidden"]), show_default=True, help="Units per layer."),
        click.option("--embed", default=str(d["embed"]), show_default=True, help="Embedding size; 0 = one-hot input."),
        click.option("--dropout", default=str(d["dropout"]), show_default=True),
        click.option("--optimizer", default=d["optimizer"], show_default=True, help="adam, rmsprop or adagrad."),
        click.option("--lr", default=str(d["lr"]), show_default=True, help="Learning rate."),
        click.option("--lr-decay", "lr_decay", default=str(d["lr_decay"]), show_default=True,
                     help="Multiply the learning rate by this over each epoch (smoothly, step by step); 1 = constant."),
        click.option("--weight-decay", "weight_decay", default=str(d["weight_decay"]), show_default=True,
                     help="L2 penalty on the weights (the optimizer's weight_decay)."),
        click.option("--token-noise", "token_noise", default=None,
                     help="Replace this share of the training inputs by other tokens of the batch (targets stay): "
                          "a small corpus is then harder to learn by heart. Default: 0.3 for --encoding pitch, "
                          "else 0."),
        click.option("--batch", default=str(d["batch"]), show_default=True,
                     help="Windows per step (windows mode) or parallel streams (tbptt)."),
        click.option("--window", default=str(d["window"]), show_default=True,
                     help="Tokens per window (windows mode), or per back-propagated chunk (tbptt)."),
        click.option("--stride", default=str(d["stride"]), show_default=True,
                     help="Windows mode: tokens between window starts; 1 = every window (the nocturne study)."),
        click.option("--targets", default=d["targets"], show_default=True,
                     help="Windows mode: all = loss at every position of a window; last = only the token after "
                          "it (the study)."),
        click.option("--epochs", default=str(d["epochs"]), show_default=True, help="Maximum epochs."),
        click.option("--patience", default=str(d["patience"]), show_default=True,
                     help="Stop after this many epochs without a better validation loss."),
        click.option("--seed", default=str(d["seed"]), show_default=True),
        click.option("--threads", default=str(d["threads"]), show_default=True,
                     help="Torch threads per run; 0 = torch's default."),
        click.option("--transpose", default=str(d["transpose"]), show_default=True,
                     help="Augment: also train on each piece transposed by -N..+N semitones; 0 = off. Note "
                          "encodings only (chars ignores it)."),
        click.option("--val-sample", "val_sample", default=str(d["val_sample"]), show_default=True,
                     help="Score the window measure on at most this many evenly spaced validation targets each epoch "
                          "(each costs a whole window of steps); 0 = all. The full-context measure scores all."),
        click.option("--max-minutes", "max_minutes", default=str(d["max_minutes"]), show_default=True,
                     help="Time budget (training and validation): the epoch under way when it runs out stops "
                          "early, is validated and ends the run; 0 = none."),
        click.option("--init-from", "init_from", default=None,
                     help="Start from another run's weights (its best.pt), e.g. a frames model trained on more "
                          "music; its cell, layers, width, embedding and stack are taken unless given. The "
                          "vocabularies must agree (frames always do)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return device_option(f)


def parse_train_values(raw: dict) -> dict[str, list]:
    """Option strings (possibly comma lists) -> typed value lists per TrainConfig field."""
    from pipeline.store.rundir import TrainConfig
    types = {fl.name: type(fl.default) for fl in fields(TrainConfig)}
    out = {}
    for key, value in raw.items():
        if key not in types or value is None:
            continue
        items = [str(value)] if key in ("dataset", "init_from") else csv_list(str(value))
        try:
            out[key] = [types[key](v) for v in items]
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a valid {types[key].__name__}", param_hint=f"--{key}")
        if not out[key]:
            raise click.BadParameter("needs a value", param_hint=f"--{key}")
    return out


@main.command()
@train_options
@click.option("--name", help="Run folder name under --runs. Default: <dataset>-<cell>-<layers>x<hidden>[-<task>].")
@click.option("--runs", default="runs", show_default=True, type=click.Path(path_type=Path))
@click.option("--resume", is_flag=True, help="Continue a killed or interrupted run from its last checkpoint "
                                             "(refused if its dataset changed; --epochs may extend it).")
def train(name, runs, resume, **raw):
    """Train one model on a processed dataset into runs/<name>/.

    Without --data, the most recently extracted dataset is used (the first line says which).
    Validation reports the study's measure (next token after every 30-token window of the
    held-out pieces: val_loss) and the full-context one (the same targets, the state carried
    over each whole piece: val_full_loss); the best epoch is the lowest val_full_loss with
    --mode tbptt, the lowest val_loss with --mode windows.

    \b
    --encoding chars has its own defaults (whole ABC tunes), for the options not given:
    CHARS_DEFAULTS

    \b
    Example:
      python cli.py train --cell gru --layers 4 --hidden 128
      python cli.py train --data processed/nocturnes --cell gru --layers 4 --hidden 128 --epochs 40
      python cli.py train --data processed/nocturnes --encoding pitch --task regress --cell lstm
      python cli.py train --data processed/nocturnes --name my-run --resume
    """
    from pipeline.store.rundir import TrainConfig
    from pipeline.commands.train import run as train_command

    values = parse_train_values(raw)
    multi = [k for k, v in values.items() if len(v) > 1]
    if multi:
        raise click.UsageError(f"train takes one value per option (got lists for {', '.join(multi)}); use `grid`")
    given = {k for k in values if click.get_current_context().get_parameter_source(k).name == "COMMANDLINE"}
    config = TrainConfig(**{k: v[0] for k, v in values.items()})
    with known_errors("interrupted; finished epochs are kept: continue with --resume --name <run>"), \
            Progress(unit="epoch") as bar:
        def on_epoch(row):
            bar.bar.n = row["epoch"]
            bar.bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{row['val_loss']:.3f}",
                                full=f"{row['val_full_loss']:.3f}", acc=f"{row['val_acc']:.3f}")

        def on_start(line):
            click.echo(line)
            bar.start(config.epochs, "train")
        s = train_command(config, runs=runs, name=name, resume=resume, given=given,
                          on_start=on_start, on_epoch=on_epoch)
    extra = f", MAE {s.val_mae:.2f} semitones" if s.val_mae is not None else ""
    full = f"; full context {s.val_full_loss:.4f}, acc {s.val_full_acc:.3f}" if s.val_full_loss is not None else ""
    why = {"patience": "; stopped early (no better validation loss)", "budget": "; stopped at --max-minutes"}
    click.echo(f"trained {s.epochs} epochs ({s.seconds:.0f} s, {s.parameters:,} parameters){why.get(s.stopped, '')}; "
               f"best epoch {s.best_epoch}: val loss {s.val_loss:.4f}, val acc {s.val_acc:.3f}{extra}{full} "
               f"-> {s.run}/")


def _chars_defaults_help() -> str:
    from pipeline.codecs import get_codec

    return "  " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in get_codec("chars").train_defaults.items())


train.help = train.help.replace("CHARS_DEFAULTS", _chars_defaults_help())


# ------------------------------------------------------------------ generate
def run_option(f):
    return click.option("--run", "run_dir", type=click.Path(path_type=Path),
                        help="A run folder. Default: the most recently trained run under runs/.")(f)


def keys_option(f):
    return click.option("--keys", default="all", show_default=True, type=click.Choice(["all", "one"]),
                        help="all: a model of a note encoding trained with --transpose N predicts as the average over "
                             "the 2N+1 keys it trained in (the piece read in each at once); one: in the written key "
                             "only.")(f)


def floats(value: str, option: str) -> list[float]:
    try:
        return [float(t) for t in csv_list(value)]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of numbers", param_hint=option) from None


@main.command()
@run_option
@click.option("--count", default=4, show_default=True, help="Samples, drawn as one batch.")
@click.option("--length", type=int, default=None,
              help="New tokens per sample (at most). Default: 1,000 for chars models (a whole tune), 300 otherwise.")
@click.option("--temperature", default="",
              help="Softmax temperature; a comma list gives one folder per temperature. "
                   "Default: the encoding's (1.0; frames 0.7).")
@click.option("--seed", default=0, show_default=True)
@click.option("--primer", default=None,
              help="validation (opening of a held-out piece; default for note models), start (<start>; default "
                   "for chars models), or tokens given with --primer-tokens.")
@click.option("--primer-tokens", default="",
              help="Space-separated tokens, e.g. 'C4 E4 G4.C5'; for chars: a text after <start>, \\n for a new line.")
@click.option("--primer-length", default=0, show_default=True, help="Primer tokens taken from a held-out piece; 0 = the run's window.")
@click.option("--primer-piece", default="", help="Which held-out piece primes the samples.")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]))
@keys_option
@click.option("--render/--no-render", "do_render", default=True, show_default=True,
              help="Also write MIDI files (chars: for the tunes that pass every check).")
@click.option("--engrave/--no-engrave", default=True, show_default=True,
              help="Chars models: draw playable tunes as SVG sheet music.")
@click.option("--engrave-count", type=int, default=None,
              help="Chars models: playable tunes drawn per temperature, the first N; 0 = all. Default: all with "
                   "abcm2ps (about 15 ms a tune), 5 with the LilyPond fallback (seconds a tune).")
@click.option("--max-length", default=100_000, show_default=True, help="Cap on --length (raise it if you mean it).")
@device_option
def generate(run_dir, count, length, temperature, seed, primer, primer_tokens, primer_length, primer_piece,
             checkpoint, keys, do_render, engrave, engrave_count, max_length, device):
    """Sample new sequences from a trained run (needs only the run folder).

    \b
    Example:
      python cli.py generate --run runs/nocturnes-gru-4x128 --count 10 --length 500 --temperature 0.8,1.0
      python cli.py generate --run runs/oneills-lstm-1x150 --temperature 0.5,1,2 --count 100
      python cli.py generate --run runs/oneills-lstm-1x150 --primer-tokens "R:reel\\n" --no-engrave

    \b
    Chars models: every tune is primed with <start> (or <start> + your text) and ends at <end> or
    --length. Each temperature folder gets sample_NNN.abc for every tune, MIDI and SVG sheet music
    for the playable ones and validity.csv (parses, MIDI, bars matching the meter, ended, length,
    error); samples/validity_summary.csv and .md compare the temperatures of the command.
    """
    from pipeline.commands import generate as generate_command
    from pipeline.stages.generate import GenerateConfig

    temps = floats(temperature, "--temperature")
    with known_errors("interrupted; the temperatures reported above are written, the one being sampled is not"):
        base = GenerateConfig(count=count, length=length, seed=seed, primer=primer or "", primer_length=primer_length,
                              primer_piece=primer_piece, checkpoint=checkpoint, keys=keys)
        with Progress(unit="tune") as bar:
            res = generate_command.run(run_dir, base, temps, primer_text=primer_tokens, render_midi=do_render,
                                   engrave=engrave, engrave_count=engrave_count, device=device,
                                   max_length=max_length, progress=bar.update, on_total=bar.start, notice=echo_err,
                                   on_start=click.echo,
                                   on_temperature=lambda r: click.echo(_temperature_line(r, count, do_render)))
    if res.validity_summary is not None:
        from pipeline.measures.abc_eval import validity_markdown

        click.echo(validity_markdown(res.validity_summary), nl=False)
        click.echo(f"validity of {len(res.temperatures)} temperatures x {count} tunes -> {res.summary_files[0]} and "
                   f"{Path(res.summary_files[1]).name}")


def _temperature_line(r, count: int, midi: bool) -> str:
    if r.validity is not None:
        t = r.validity
        return (f"generated {count} tunes at T={r.temperature:g} ({int(t['ended'].sum())} ended with <end>, "
                f"{int(t['parses'].sum())} parse, {int((t['midi'] != '').sum())} MIDI, {int((t['svg'] != '').sum())} "
                f"SVG; {t['length'].min()}-{t['length'].max()} chars) -> {r.folder}/")
    return (f"generated {count} samples at T={r.temperature:g} ({min(r.lengths)}-{max(r.lengths)} tokens"
            f"{f', {r.midi_files} MIDI files' if midi else ''}) -> {r.folder}/")


# ------------------------------------------------------------------ evaluate
@main.command()
@run_option
@click.option("--data", "dataset", required=True, type=click.Path(path_type=Path),
              help="A processed dataset (any corpus, e.g. pieces the run never saw); every piece is scored.")
@click.option("--side", default="all", show_default=True, type=click.Choice(["all", "train", "validation", "test"]),
              help="Score every piece, or one side of the dataset's split (validation: its held-out pieces; "
                   "written to <dataset name>-<hash>-validation.json).")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]))
@click.option("--window", default=-1, show_default=True,
              help="The study's measure: the next token after every window of this many tokens (stride 1); "
                   "0 = the full-context measure only; -1 = the encoding's own (30; frames: 0).")
@keys_option
@device_option
def evaluate(run_dir, dataset, side, checkpoint, window, keys, device):
    """Score a trained run on every piece of a dataset, beside n-gram baselines.

    Rows, all on the same targets (every token after the first --window of a piece): the
    network after each --window-token window (the study's measure), the network with the
    state carried over the whole piece (full context), and Witten-Bell 1/2/3/5-grams fitted
    on the run's own training pieces with the run's augmentation. A note model trained in
    several keys (--transpose) is scored averaged over them, as it generates, and in the
    written key alone. Tokens the run's vocabulary lacks are counted and cut the piece
    (no row predicts across them).
    Writes <run>/eval/<dataset name>-<hash>.json (the hash tells datasets of one name apart).

    \b
    Example:
      python cli.py extract my-pieces/ --name unseen
      python cli.py evaluate --run runs/nocturnes-gru-2x128-pitch --data processed/unseen
      python cli.py evaluate --run runs/oneills-lstm-2x256-chars --data processed/oneills --side validation
    """
    from pipeline.commands import evaluate as evaluate_command
    from pipeline.stages.evaluate import EvalConfig, eval_markdown

    with known_errors():
        with Progress(unit="target", log_every=60) as bar:
            res = evaluate_command.run(run_dir, EvalConfig(dataset=str(dataset), side=side, checkpoint=checkpoint,
                                                   window=window, keys=keys),
                                       device=device, on_start=click.echo, on_total=bar.start, progress=bar.update)
    click.echo(eval_markdown(res), nl=False)
    gain = (f"; {100 * res['gain']:+.1f}% against the best n-gram ({res['best_baseline']})"
            if res["gain"] is not None else "")
    frames = (f"; {res['nats_per_frame']:.3f} nats per frame over {res['frames']:,} frames"
              if "nats_per_frame" in res else "")
    click.echo(f"scored {res['targets']:,} targets in {res['pieces']} pieces ({res['unknown_tokens']:,} unknown tokens "
               f"left out){gain}{frames} -> {res['file']}")


# ------------------------------------------------------------------ render
@main.command()
@click.argument("folders", nargs=-1, type=click.Path(path_type=Path))
@run_option
@click.option("--audio", type=click.Choice(["none", "wav", "flac", "ogg"]), default="wav", show_default=True,
              help="Synthesise audio with FluidSynth (built-in synthesiser if FluidSynth is missing).")
@click.option("--piano-roll/--no-piano-roll", default=True, show_default=True, help="Draw a PNG piano roll per sample.")
@click.option("--fixed-beats", type=float, default=0.0, show_default=True,
              help="Space every onset by this many beats instead of drawing the corpus's rhythms.")
@click.option("--no-primer", is_flag=True, help="Render only the generated continuation.")
@device_option
def render(folders, run_dir, audio, piano_roll, fixed_beats, no_primer, device):
    """Turn generated samples (or MIDI files) into MIDI, audio and piano-roll pictures.

    FOLDERS are sample folders written by `generate`, or MIDI files / folders of MIDI files.
    With none, the latest samples of --run (default: the most recently trained run) are
    rendered, drawing them first with the `generate` defaults if the run has none yet.

    \b
    Example:
      python cli.py render
      python cli.py render runs/nocturnes-gru-4x128/samples/t1-s0
      python cli.py render ../shared/data/chopin-nocturnes/op09-no2-e-flat-major.mid --audio flac
    """
    from pipeline.commands import render as render_command
    from pipeline.stages.render import RenderConfig

    config = RenderConfig(audio=audio, piano_roll=piano_roll, fixed_beats=fixed_beats, include_primer=not no_primer)
    with known_errors("interrupted; the files rendered so far are kept"), Progress(unit="file") as bar:
        bar.start(0, "render")
        res = render_command.run(list(folders), run_dir, config, device=device, on_start=click.echo,
                                 progress=bar.update, notice=echo_err)
    skipped = f" ({len(res.skipped)} skipped)" if res.skipped else ""
    click.echo(f"rendered {res.rendered} sequences{skipped} (MIDI{', ' + audio if audio != 'none' else ''}"
               f"{', piano rolls' if piano_roll else ''}) -> {', '.join(res.folders)}")


# ------------------------------------------------------------------ heatmap
@main.command()
@run_option
@click.option("--sample", default="", help="A samples folder written by `generate` (its primer + sample --index).")
@click.option("--index", default=0, show_default=True, help="Which sample of --sample.")
@click.option("--file", "file_", default="", help="An .abc file (chars models) or a MIDI file (note models).")
@click.option("--text", default="", help=r"ABC text (\n for a new line), or space-separated note tokens.")
@click.option("--length", default=300, show_default=True,
              help="Without --sample/--file/--text: tokens of a fresh sample drawn from the run.")
@click.option("--seed", default=0, show_default=True, help="Seed of the fresh sample.")
@click.option("--temperature", default=1.0, show_default=True, help="Temperature of the fresh sample.")
@click.option("--layer", default=-1, show_default=True, help="Recurrent layer: 0 = lowest, -1 = top.")
@click.option("--state", default="hidden", show_default=True, type=click.Choice(["hidden", "cell"]),
              help="hidden (h_t) or, for LSTM, cell (c_t).")
@click.option("--units", default="", help="Draw these units (e.g. 3,17) instead of the best unit of each feature.")
@click.option("--top", default=3, show_default=True, help="Best units per feature listed in ranking.csv.")
@click.option("--columns", default=0, show_default=True, help="Cells per row; 0 = 80 for text, 16 for notes.")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]))
@click.option("--out", default=None, type=click.Path(path_type=Path), help="Output folder. Default: <run>/heatmaps.")
@device_option
def heatmap(run_dir, sample, index, file_, text, length, seed, temperature, layer, state, units, top, columns,
            checkpoint, out, device):
    """Hidden-unit heatmaps over a sequence, and the units that track musical structure.

    Records every unit of one layer at every step, scores each unit against features
    of the sequence (ABC: header, title, bar lines, quotes...; notes: chord, register,
    pitch, repeats) by correlation, and writes features.csv, ranking.csv and one PNG per
    feature for its best unit (heatmap_<feature>_unit<k>.png). At most 2,000 tokens are drawn.

    \b
    Example:
      python cli.py heatmap --run runs/oneills-lstm-2x128 --state cell --layer 0
      python cli.py heatmap --run runs/nocturnes-gru-4x128 --sample runs/nocturnes-gru-4x128/samples/t1-s0 --index 2
      python cli.py heatmap --run runs/oneills-lstm-2x128 --text "M:6/8\\nL:1/8\\nK:G\\n|:GAB c2d:|" --units 3,17
    """
    from pipeline.commands import heatmap as heatmap_command
    from pipeline.stages.heatmap import HeatmapConfig

    try:
        unit_list = tuple(int(u) for u in csv_list(units))
    except ValueError:
        raise click.BadParameter(f"{units!r} is not a list of unit numbers", param_hint="--units")
    config = HeatmapConfig(sample=sample, index=index, file=file_, text=text.replace("\\n", "\n"), length=length,
                           seed=seed, temperature=temperature, layer=layer, state=state, units=unit_list, top=top,
                           columns=columns, checkpoint=checkpoint)
    with known_errors("interrupted; nothing was drawn"), Progress(0, "heatmap") as bar:
        res = heatmap_command.run(run_dir, config, out, progress=bar.update, device=device, on_start=click.echo)
    best = res["best"]
    strongest = f"; strongest: unit {best[1]} ~ {best[0]} (r={best[2]:+.2f})" if best else ""
    absent = f"; not in this sequence: {', '.join(res['absent'])}" if res["absent"] and not units else ""
    click.echo(f"{len(res['pictures'])} heatmaps of {res['cell']} layer {res['layer']} ({res['state']} state) over "
               f"{res['tokens']} tokens of {res['source']}{strongest}{absent} -> {res['folder']}/")


# ------------------------------------------------------------------ grid
@main.command()
@train_options
@click.option("--name", help="Grid folder under --runs. Default: <dataset>-grid.")
@click.option("--runs", default="runs", show_default=True, type=click.Path(path_type=Path))
@click.option("--workers", default=0, show_default=True,
              help="Runs trained at once; 0 = one per core (local) or as many as Ray's CPUs allow. "
                   "With --threads 0 each run gets cores/workers torch threads.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a process pool on this machine; ray: one Ray task (1 CPU) per run.")
@click.option("--address", default="", help="Ray cluster address for --executor ray, e.g. auto or "
                                            "ray://head:10001; default: start a local Ray.")
def grid(name, runs, workers, executor, address, **raw):
    """Train every combination of the given options into runs/<name>/ and summarise them.

    Every training option takes a comma-separated list. Each combination is a normal
    run folder named <cell>-<layers>x<hidden>-<hash of its config>. Run the same
    command again to resume: finished runs are skipped, interrupted ones continue.
    Without --data, the most recently extracted dataset is used.

    \b
    Example:
      python cli.py grid --cell rnn,lstm,gru --layers 1,2,3,4 --hidden 64,128 --name study
      python cli.py grid --data processed/nocturnes --cell rnn,lstm,gru --layers 1,2 --hidden 64,128
      python cli.py grid --data processed/nocturnes --cell gru --dropout 0,0.2 --lr 0.001,0.002 --name tune
      python cli.py grid --data processed/nocturnes --cell lstm,gru --executor ray --address auto --name big
    """
    from pipeline.commands import grid as grid_command
    from pipeline.stages.grid import GridConfig

    values = parse_train_values(raw)
    given = {k for k in values if click.get_current_context().get_parameter_source(k).name == "COMMANDLINE"}
    with known_errors("interrupted; finished runs and epochs are kept: run the same command again to resume"), \
            Progress(unit="run") as bar:
        def progress(rid, result):
            bar.update(1)
            bar.bar.set_postfix_str(f"{rid} {result['status']}")
            if result["status"] == "failed":
                bar.bar.write(f"failed: {rid}: {(result['error'].splitlines() or [''])[0]}", file=sys.stderr)
        res = grid_command.run(values, GridConfig(name=name or "", runs=str(runs), workers=workers, executor=executor,
                                              address=address), given=given, on_start=click.echo, on_total=bar.start,
                           notice=echo_err, progress=progress)
    _echo_summary(res["table"])
    c, n = res["counts"], sum(res["counts"].values())
    click.echo(f"grid {Path(res['folder']).name}: {n} runs ({c['trained']} trained, {c['resumed']} resumed, "
               f"{c['restarted']} restarted, {c['skipped']} already finished, {c['failed']} failed) "
               f"-> {res['folder']}/ (grid.json, summary.csv, summary.md, curves_<cell>.png, loss_vs_params.png)")
    if c["failed"]:
        rid, error = next((rid, r["error"]) for rid, r in res["runs"].items() if r["status"] == "failed")
        raise click.ClickException(f"{c['failed']} of {n} runs failed (first: {rid}: "
                                   f"{(error.splitlines() or [''])[0]}); run the same command again to retry them")


def _echo_summary(table) -> None:
    """The summary table without its error column (errors are printed as runs fail)."""
    from pipeline.stages.report import to_markdown

    click.echo(to_markdown(table.drop(columns=[c for c in ("error",) if c in table])), nl=False)


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(folder):
    """Summarise a grid (or any folder of runs), also while it trains: table and figures.

    Writes summary.csv, summary.md, curves_<cell>.png and loss_vs_params.png into FOLDER.

    \b
    Example:
      python cli.py report runs/study
    """
    from pipeline.commands import report as report_command

    with known_errors():
        res = report_command.run(folder)
    _echo_summary(res["table"])
    counts = res["table"]["status"].value_counts().to_dict()
    states = ", ".join(f"{counts[s]} {s}" for s in ("finished", "incomplete", "failed") if s in counts)
    click.echo(f"summarised {len(res['table'])} runs ({states}) -> {folder}/ "
               f"({', '.join(Path(f).name for f in res['files'])})")


# ------------------------------------------------------------------ compare
@main.command("compare")
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--temperature", default="0.8,1.0,1.2", show_default=True,
              help="Comma-separated sampling temperatures; one group of rows each.")
@click.option("--count", default=2, show_default=True, help="Samples per model and temperature.")
@click.option("--length", default=200, show_default=True,
              help="New tokens per sample, and tokens of the real continuation.")
@click.option("--seed", default=0, show_default=True, help="Sampling, rhythms and the blind column order.")
@click.option("--primer-piece", default="", help="Held-out piece whose opening primes every model "
                                                 "(default: the first in the first run's primers.json).")
@click.option("--primer-length", default=0, show_default=True, help="Primer tokens; 0 = the first run's window.")
@click.option("--checkpoint", default="best", show_default=True, type=click.Choice(["best", "last"]))
@click.option("--blind", is_flag=True, help="Shuffle the models behind letters A, B, C… and hide names and "
                                            "metrics; the key goes to key.json beside the page.")
@click.option("--ngram/--no-ngram", default=True, show_default=True,
              help="Add a column sampled from an n-gram model fitted on the same training pieces.")
@click.option("--ngram-order", default=0, show_default=True,
              help="The n-gram's order; 0 = the order 2-6 with the lowest validation loss.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Page folder. Default: runs/compare-<id of the runs and options>.")
@device_option
def compare_cmd(runs, temperature, count, length, seed, primer_piece, primer_length, checkpoint, blind, ngram,
                ngram_order, out, device):
    """A side-by-side listening page: every model continues the same held-out opening.

    RUNS are run folders, or folders of runs such as a grid's. Each cell has an audio
    player, a piano roll and the sample's pitch and rhythm metrics (collapse and copying
    flagged); an n-gram sampler fitted on the same training pieces gets a column too (in
    --blind mode it hides behind a letter like the models); the real continuation of the
    piece and a summary table sit beside them. Open <out>/index.html in a browser (works offline).

    \b
    Without RUNS, every finished run trained on the most recently extracted dataset.

    \b
    Example:
      python cli.py compare
      python cli.py compare runs/noct-rnn runs/noct-lstm runs/noct-gru --temperature 0.8,1.0 --count 3
      python cli.py compare runs/study --blind --out runs/listening-test
    """
    from pipeline.commands import compare as compare_command
    from pipeline.stages.compare import CompareConfig

    config = CompareConfig(temperatures=tuple(floats(temperature, "--temperature")), count=count, length=length,
                           seed=seed, primer_piece=primer_piece, primer_length=primer_length, blind=blind,
                           checkpoint=checkpoint, ngram=ngram, ngram_order=ngram_order)
    with known_errors("interrupted; no page was written (an earlier page in that folder is unchanged)"), \
            Progress(unit="sample") as bar:
        res = compare_command.run(list(runs), config, out, on_start=click.echo, on_total=bar.start,
                              progress=bar.update, notice=echo_err, device=device)
    key = f"; key: {res['key']}" if res["key"] else ""
    n_cols = sum(c["cell"] != "real" for c in res["columns"])  # a blind page's real continuation has a letter too
    click.echo(f"compared {n_cols} column{'s' * (n_cols != 1)} × {len(config.temperatures)} temperatures × "
               f"{count} samples with the real continuation of {res['piece']}{key} -> {res['page']}")


# ------------------------------------------------------------------ tally
@main.command()
@click.argument("page", metavar="PAGE_FOLDER", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("answers", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--resamples", default=10_000, show_default=True, help="Bootstrap resamples of each mean rating.")
@click.option("--confidence", default=0.95, show_default=True, help="Level of the bootstrap interval.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap (same answers, same interval).")
def tally(page, answers, resamples, confidence, seed):
    """Un-blind and sum up listeners' answers to a `compare --blind` page.

    PAGE_FOLDER is the page folder; ANSWERS are the files listeners downloaded from it (one
    each). Per column: mean rating with a bootstrap interval, how often it was rated
    above each other column, and how often it was taken for the real continuation (a
    one-sided binomial test against chance). A file that is not an answer file, is
    malformed or answers another page gets one `skipped` line and is left out.
    Writes PAGE_FOLDER/tally/: tally.json, models.csv, preference.csv, tally.png.

    \b
    Example:
      python cli.py compare runs/study --blind --out runs/listening-test
      python cli.py tally runs/listening-test ~/Downloads/answers-*.json
    """
    from pipeline.commands import tally as tally_command
    from pipeline.stages.tally import TallyConfig, summary_text

    with known_errors("interrupted; nothing was written (an earlier tally is unchanged)"):
        res = tally_command.run(page, list(answers), TallyConfig(confidence=confidence, resamples=resamples, seed=seed),
                            notice=echo_err)
    click.echo(summary_text(res), nl=False)
    n = len(res.listeners)
    click.echo(f"tallied {n} listener{'s' * (n != 1)} ({len(res.skipped)} file{'s' * (len(res.skipped) != 1)} "
               f"skipped) -> {res.folder}/ ({', '.join(f.name for f in res.files)})")


if __name__ == "__main__":
    main()
