"""What the user hears from their own three commands: key, pulse and copying of the rendered samples.

Run:  .venv/bin/python bench/bench_listen.py [--work bench/out/listen] [--train-args "..."] [--keep]

In a fresh clone of this repository (``git clone``, so only committed files) with the shared Chopin
nocturnes dropped into ``raw_midi/``, runs exactly the user's contract::

    python cli.py extract raw_midi/
    python cli.py train --cell gru --layers 4 --hidden 128
    python cli.py render

(``--train-args`` adds options to the train line, to compare other set-ups by the same measure), then
measures every rendered sample's MIDI file beside the real nocturnes, by the issue's definitions:

* **scale fit**: share of notes in the best-fitting major or natural-minor scale
  (:func:`pipeline.measures.pitch.scale_consistency`; 12 random pitch classes give about 0.58);
* **pulse**: share of the gaps between consecutive distinct onsets equal to the commonest gap
  (:func:`pipeline.measures.rhythm.pulse_share`, on a grid of twelfths of a beat);
* **copy**: share of the sample's pitch 8-grams (onset order, chords low to high) found in the
  training pieces' (:func:`pipeline.measures.metrics.ngram_copy_rate`).

Rendered files hold the primer (the opening of the held-out nocturne) before the continuation, as
``render`` writes them by default; the continuation alone is measured too (decoded from the samples
folder without its primer). Wall time of each command is printed; the baseline is the real music,
measured in the same run by the same functions.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import shared
from pipeline.inputs.midi_io import midi_file_to_notes
from pipeline.measures.metrics import build_ngram_index, ngram_copy_rate, pulse_share, scale_consistency

COMMANDS = ["extract raw_midi/", "train --cell gru --layers 4 --hidden 128", "render"]


def pitches_in_onset_order(notes) -> list[int]:
    return notes.sort_values(["start", "pitch"])["pitch"].astype(int).tolist()


def figures(notes, index) -> dict:
    p = pitches_in_onset_order(notes)
    return {"scale": scale_consistency(p), "pulse": pulse_share(notes["start_beat"].to_numpy()),
            "copy": ngram_copy_rate(p, index) if index is not None else float("nan"), "notes": len(p)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=shared.ROOT / "bench" / "out" / "listen")
    ap.add_argument("--train-args", default="", help="extra options for the train line")
    ap.add_argument("--render-args", default="", help="extra options for the render line")
    ap.add_argument("--keep", action="store_true", help="reuse an existing clone's runs (skip the commands)")
    a = ap.parse_args()
    nocturnes = shared.require(shared.NOCTURNES)
    clone = a.work / "clone"
    times = {}
    if not a.keep:
        if clone.exists():
            shutil.rmtree(clone)
        a.work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", str(shared.ROOT), str(clone)], check=True)
        for f in sorted(nocturnes.glob("*.mid")):
            shutil.copy(f, clone / "raw_midi" / f.name)
        lines = [COMMANDS[0], f"{COMMANDS[1]} {a.train_args}".strip(), f"{COMMANDS[2]} {a.render_args}".strip()]
        for line in lines:
            t0 = time.perf_counter()
            print(f"$ python cli.py {line}", flush=True)
            out = subprocess.run([sys.executable, "cli.py", *shlex.split(line)], cwd=clone, capture_output=True,
                                 text=True)
            times[line] = time.perf_counter() - t0
            tail = [x for x in (out.stdout + out.stderr).splitlines() if x.strip()]
            print("  " + "\n  ".join(tail[:1] + tail[1:][-2:]), flush=True)
            if out.returncode:
                sys.exit(f"failed ({out.returncode}): python cli.py {line}")
    # the training pieces, from the dataset the run read (its split), for the copy measure
    from pipeline.store.dataset import load_dataset, read_notes
    from pipeline.store.rundir import latest_run, read_run_config
    from pipeline.store.samples import latest_samples, read_samples

    run = latest_run(clone / "runs")
    config = read_run_config(run)
    ds = load_dataset(config["dataset"], config["encoding"])
    notes = read_notes(config["dataset"])
    train = [pitches_in_onset_order(notes[notes["piece"] == p]) for p in ds.split["train"]]
    index = build_ngram_index(train, 8)
    folder = latest_samples(run)[0]
    rows = []
    for mid in sorted(folder.glob("sample_*.mid")):
        rows.append({"file": mid.name, **figures(midi_file_to_notes(mid)[0], index)})
    data = read_samples(folder)
    from pipeline.codecs import TimingModel, get_codec
    from pipeline.store.rundir import read_timing

    codec, timing = get_codec(data.encoding), TimingModel.from_stats(read_timing(run))
    cont = [figures(codec.decode(s, timing, seed=i, context=data.primer), index)
            for i, s in enumerate(data.samples)]
    real = [{"file": f.name, **figures(midi_file_to_notes(f)[0], None)} for f in sorted(nocturnes.glob("*.mid"))]

    print(f"\nrun {run.name} ({config['encoding']}, {config['cell']} {config['layers']}x{config['hidden']}), "
          f"samples {folder.name}; held out: {', '.join(ds.split['validation'])}")
    print("| | scale fit | pulse | 8-gram copy | notes |\n|---|---|---|---|---|")
    for r in real:
        print(f"| real {r['file']} | {r['scale']:.2f} | {r['pulse']:.2f} | | {r['notes']} |")
    for r in rows:
        print(f"| rendered {r['file']} | {r['scale']:.2f} | {r['pulse']:.2f} | {r['copy']:.2f} | {r['notes']} |")
    for i, r in enumerate(cont):
        print(f"| continuation {i} | {r['scale']:.2f} | {r['pulse']:.2f} | {r['copy']:.2f} | {r['notes']} |")
    med = lambda xs, k: float(np.nanmedian([x[k] for x in xs])) if xs else float("nan")  # noqa: E731
    summary = {"real": {k: med(real, k) for k in ("scale", "pulse")},
               "rendered": {k: med(rows, k) for k in ("scale", "pulse", "copy")},
               "rendered_max_copy": max((r["copy"] for r in rows), default=float("nan")),
               "continuation": {k: med(cont, k) for k in ("scale", "pulse", "copy")},
               "continuation_max_copy": max((r["copy"] for r in cont), default=float("nan")),
               "seconds": times, "run": str(run), "encoding": config["encoding"]}
    print("\nmedians: real scale {real[scale]:.2f} pulse {real[pulse]:.2f}; rendered scale {rendered[scale]:.2f} "
          "pulse {rendered[pulse]:.2f}; continuation scale {continuation[scale]:.2f} "
          "pulse {continuation[pulse]:.2f}".format(**summary))
    print(f"largest 8-gram copy: rendered {summary['rendered_max_copy']:.2f}, continuation "
          f"{summary['continuation_max_copy']:.2f}")
    print("seconds: " + ", ".join(f"{k.split()[0]} {v:.0f}" for k, v in times.items()))
    (a.work / "listen.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
