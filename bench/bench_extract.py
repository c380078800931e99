"""Extract speed: the symusic readers against music21 and pretty_midi (issue "Speed and scale", part 1).

Run:  .venv/bin/python bench/bench_extract.py [--part piano|abc|all] [--abc-sample 200] [--abc-full]

(a) piano  a 45-file corpus: the five shared nocturnes and 40 variants of them
           (each transposed by -4..+4 semitones and played 0.8-1.2 times as fast),
           written with symusic into a temporary folder. ``python cli.py extract``
           as a subprocess, the whole command from start-up to its last line, cold
           (a new output folder), against music21 (cold: forceSource=True,
           storePickle=False) parsing the same 45 files, also as
           a subprocess with its start-up. Then the stage alone, in this process
           with its imports done: ``pipeline.stages.extract.extract`` (one worker)
           against pretty_midi and symusic parsing alone.
(b) abc    O'Neill's 1850 (2,009 tunes): ``python cli.py extract --corpus
           oneills1850`` against music21 reading the same tunes the way extract
           did before (``abc_io.tune_to_notes``): an even sample of
           ``--abc-sample`` tunes on one core, extrapolated to all tunes on as
           many workers as extract uses; ``--abc-full`` parses every tune in a
           process pool instead (about 3 minutes on 2 cores).

Prints Markdown; every figure is a ratio against a baseline measured in the same
run. Never asserts on time.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from shared import NOCTURNES, ROOT, require

# (semitones, tempo factor) of the 8 variants of each nocturne
VARIANTS = [(-4, 0.8), (-3, 0.85), (-2, 0.9), (-1, 0.95), (1, 1.05), (2, 1.1), (3, 1.15), (4, 1.2)]

MUSIC21_PARSE = """
import sys, time
t0 = time.perf_counter()
from music21 import converter
t1 = time.perf_counter()
for path in sys.argv[1:]:
    converter.parse(path, forceSource=True, storePickle=False)
print(f"{t1 - t0:.3f} {time.perf_counter() - t1:.3f}")
"""


def write_variant(src: Path, out: Path, semitones: int, speed: float) -> Path:
    """``src`` transposed by ``semitones`` and played ``speed`` times as fast, written with symusic."""
    import symusic

    score = symusic.Score(src).shift_pitch(semitones)
    for tempo in score.tempos:
        tempo.mspq = round(tempo.mspq / speed)
    score.dump_midi(out)
    return out


def piano_corpus(folder: Path) -> list[Path]:
    """The five nocturnes and their 40 variants in ``folder``."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for src in sorted(require(NOCTURNES).glob("*.mid")):
        files.append(Path(shutil.copy(src, folder / src.name)))
        for k, f in VARIANTS:
            files.append(write_variant(src, folder / f"{src.stem}_t{k:+d}_x{f:.2f}.mid", k, f))
    return files


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, cmd[:4]))}... failed:\n{proc.stderr[-2000:]}")
    return seconds, proc


def last_line(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.strip().splitlines()[-1]


def bench_piano(tmp: Path) -> None:
    import warnings

    import pretty_midi
    import symusic

    from pipeline.stages.extract import ExtractConfig, extract

    files = piano_corpus(tmp / "piano45")
    notes = sum(symusic.Score(f).note_num() for f in files)
    print(f"### (a) 45 piano files ({notes:,} notes): the five nocturnes and 40 transposed, re-timed copies\n")
    cli, proc = timed([sys.executable, "cli.py", "extract", str(tmp / "piano45"), "--name", "piano45",
                       "--out", str(tmp / "out-cli")])
    cli1, _ = timed([sys.executable, "cli.py", "extract", str(tmp / "piano45"), "--name", "piano45",
                     "--out", str(tmp / "out-cli1"), "--workers", "1"])
    m21, m21_proc = timed([sys.executable, "-c", MUSIC21_PARSE, *map(str, files)])
    m21_import, m21_parse = map(float, last_line(m21_proc).split())
    print("| command, cold, start-up included | seconds | music21 / this |\n|---|---:|---:|")
    print(f"| music21 `converter.parse(forceSource=True)`, 45 files, 1 process | {m21:.2f} | 1 |")
    print(f"| `cli.py extract`, default workers ({os.cpu_count()}) | {cli:.2f} | **{m21 / cli:.0f}x** |")
    print(f"| `cli.py extract --workers 1` | {cli1:.2f} | {m21 / cli1:.0f}x |")
    print(f"\n(music21 import {m21_import:.2f} s, parsing {m21_parse:.2f} s; extract said: `{last_line(proc)}`)\n")

    extract(files[:1], ExtractConfig(name="warm", out=str(tmp / "warm"), workers=1))  # imports, caches
    t0 = time.perf_counter()
    extract([tmp / "piano45"], ExtractConfig(name="stage", out=str(tmp / "out-stage"), workers=1))
    stage = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            pretty_midi.PrettyMIDI(str(f))
    pm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in files:
        symusic.Score.from_midi(f.read_bytes())
    sy = time.perf_counter() - t0
    print("| in this process, imports done, one worker | seconds | pretty_midi parsing / this |\n|---|---:|---:|")
    print(f"| pretty_midi parsing alone | {pm:.3f} | 1 |")
    print(f"| symusic parsing alone | {sy:.4f} | {pm / sy:.0f}x |")
    print(f"| `pipeline.stages.extract.extract`: parse, note tables, encodings, timing, split, parquet and JSON "
          f"| {stage:.3f} | {pm / stage:.1f}x |\n")


def music21_tune(text: str) -> float:
    from pipeline.inputs import abc_io
    from pipeline.core.errors import AbcParseError

    t0 = time.perf_counter()
    try:
        abc_io.tune_to_notes(abc_io.AbcTune(text=text), "t")
    except AbcParseError:
        pass
    return time.perf_counter() - t0


def bench_abc(tmp: Path, sample: int, full: bool) -> None:
    from pipeline.inputs import abc_io

    tunes = abc_io.bundled_corpus_tunes("oneills1850")
    workers = os.cpu_count() or 1
    print(f"### (b) O'Neill's 1850: {len(tunes):,} tunes in {len(abc_io.bundled_corpus_paths('oneills1850'))} "
          f"files\n")
    cli, proc = timed([sys.executable, "cli.py", "extract", "--corpus", "oneills1850", "--name", "oneills",
                       "--out", str(tmp / "out-abc")])
    if full:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(music21_tune, [t.text for t in tunes], chunksize=16))
        m21 = time.perf_counter() - t0
        how = f"all {len(tunes):,} tunes, {workers} processes"
    else:
        music21_tune(tunes[0].text)  # music21's import and first-use costs are not per tune
        step = max(1, len(tunes) // sample)
        picked = tunes[::step]
        seconds = sum(music21_tune(t.text) for t in picked)
        m21 = seconds / len(picked) * len(tunes) / workers
        how = (f"{len(picked)} tunes (every {step}th) took {seconds:.1f} s on one core: "
               f"extrapolated to {len(tunes):,} tunes on {workers} workers")
    print("| reading O'Neill's 1850 | seconds | music21 / this |\n|---|---:|---:|")
    print(f"| music21 (`abc_io.tune_to_notes`, the old extract path): {how} | {m21:.1f} | 1 |")
    print(f"| `cli.py extract --corpus oneills1850` (abc2midi via symusic), whole command, "
          f"{workers} workers | {cli:.1f} | **{m21 / cli:.0f}x** |")
    print(f"\n(extract said: `{last_line(proc)}`)\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["piano", "abc", "all"], default="all")
    ap.add_argument("--abc-sample", type=int, default=200, help="music21 tunes timed for (b)")
    ap.add_argument("--abc-full", action="store_true", help="parse every tune with music21 in (b)")
    args = ap.parse_args()
    print(f"## Extract speed ({platform.node()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}; load average before: "
          f"{os.getloadavg()[0]:.1f})\n")
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        if args.part in ("piano", "all"):
            bench_piano(Path(tmp))
        if args.part in ("abc", "all"):
            bench_abc(Path(tmp), args.abc_sample, args.abc_full)


if __name__ == "__main__":
    main()
