"""Learn from more music, then from the user's: a frames base fine-tuned on nocturnes vs the nocturnes alone.

Run:  .venv/bin/python bench/bench_finetune.py [--base-minutes 40] [--minutes 4] [--threads 1]
          [--work bench/out/finetune] [--base RUN] [--folds 5]

1. **The base** (skipped with ``--base RUN``): ``frames`` GRU on the training pieces of three of the
   four polyphonic benchmarks, JSB Chorales, Nottingham and MuseData (their validation pieces
   validate). Piano-midi.de is left out: its pieces are unnamed and include Chopin's. No Chopin is
   in the base. The documented commands::

       python cli.py extract ../shared/data/polyphonic/{jsb-chorales,nottingham,musedata}.mat --name base
       python cli.py train --data processed/base --encoding frames --max-minutes 40 --name base

2. **Leave one nocturne out** (the five shared nocturnes): for each, the other four are extracted
   (one of them validates, by extract's split), and two runs of the same network are trained on them
   under the same budget: from scratch, and from the base (``--init-from``). Both, and the n-gram
   baselines fitted on the same four pieces, are scored on the held-out nocturne in nats per frame.

3. **Other Chopin**: the Mazurka Op. 6 No. 2 that music21 ships (humdrum), written out as MIDI (each bar
   once: music21 cannot expand its repeat marks),
   scored by the two runs trained on all five nocturnes.

Figures print as a table; the baseline (the best n-gram of the same training pieces, and the
from-scratch run) is measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import shared

BASE_CORPORA = ("jsb-chorales.mat", "nottingham.mat", "musedata.mat")
MAZURKA = "chopin/mazurka06-2.krn"


def cli(args: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"$ python cli.py {' '.join(map(str, args))}\n")
        f.flush()
        out = subprocess.run([sys.executable, "cli.py", *map(str, args)], cwd=shared.ROOT, stdout=f,
                             stderr=subprocess.STDOUT)
    if out.returncode:
        sys.exit(f"failed: python cli.py {' '.join(map(str, args))} (see {log})")
    return time.perf_counter() - t0


def latest_eval(run: Path, dataset: Path) -> dict:
    found = [json.loads(p.read_text()) for p in (run / "eval").glob("*.json")]
    return max((r for r in found if r["dataset"] == str(dataset.resolve())), key=lambda r: r["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=shared.ROOT / "bench" / "out" / "finetune")
    ap.add_argument("--base", type=Path, default=None, help="an existing base run (skips step 1)")
    ap.add_argument("--base-minutes", type=float, default=40)
    ap.add_argument("--minutes", type=float, default=4, help="budget of each nocturne run")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--folds", type=int, default=5)
    a = ap.parse_args()
    nocturnes = sorted(shared.require(shared.NOCTURNES).glob("*.mid"))
    poly = shared.require(shared.POLYPHONIC)
    a.work.mkdir(parents=True, exist_ok=True)
    log, processed, runs = a.work / "bench.log", a.work / "processed", a.work / "runs"
    t = {}
    base = a.base
    if base is None:
        base = runs / "base"
        if not (base / "best.pt").exists():
            t["base extract"] = cli(["extract", *(poly / c for c in BASE_CORPORA), "--name", "base", "--out", processed],
                                    log)
            t["base train"] = cli(["train", "--data", processed / "base", "--encoding", "frames", "--max-minutes",
                                   a.base_minutes, "--epochs", 1000, "--threads", a.threads, "--runs", runs,
                                   "--name", "base"], log)
    base_config = json.loads((base / "config.json").read_text())
    shape = ["--cell", base_config["cell"], "--layers", base_config["layers"], "--hidden", base_config["hidden"]]

    # the Mazurka as MIDI (music21 reads the humdrum file; its MIDI writer plays it). Its repeat marks are
    # malformed for music21's expander, so they are dropped: every bar is played once, as written.
    from music21 import bar, corpus, repeat

    held = a.work / "held"
    mazurka = held / "mazurka" / "chopin-mazurka-op6-no2.mid"
    if not mazurka.exists():
        mazurka.parent.mkdir(parents=True, exist_ok=True)
        score = corpus.parse(MAZURKA)
        for m in score.recurse().getElementsByClass("Measure"):
            if isinstance(m.leftBarline, bar.Repeat):
                m.leftBarline = None
            if isinstance(m.rightBarline, bar.Repeat):
                m.rightBarline = None
        for r in list(score.recurse().getElementsByClass(repeat.RepeatExpression)):
            r.activeSite.remove(r)
        score.write("midi", fp=str(mazurka))

    def fold(name: str, train_files: list[Path], test_files: list[Path]) -> dict:
        src, test_src = a.work / "inputs" / name, held / name
        for folder, files in ((src, train_files), (test_src, test_files)):
            if not folder.exists():
                folder.mkdir(parents=True)
                for f in files:
                    shutil.copy(f, folder / f.name)
        cli(["extract", src, "--name", name, "--out", processed], log)
        cli(["extract", test_src, "--name", f"{name}-held", "--out", processed], log)
        out = {}
        for kind, extra in (("scratch", []), ("fine-tuned", ["--init-from", base])):
            run = runs / f"{name}-{kind}"
            if not (run / "best.pt").exists():
                cli(["train", "--data", processed / name, "--encoding", "frames", *shape, *extra, "--max-minutes",
                     a.minutes, "--epochs", 1000, "--threads", a.threads, "--runs", runs, "--name", run.name], log)
            cli(["evaluate", "--run", run, "--data", processed / f"{name}-held"], log)
            r = latest_eval(run, processed / f"{name}-held")
            out[kind] = r["nats_per_frame"]
            out[f"{kind} n-gram"] = min(r["baseline_nats_per_frame"].values())
        out["frames"] = r["frames"]
        return out

    rows = {}
    for k, held_out in enumerate(nocturnes[:a.folds]):
        rows[held_out.stem] = fold(f"loo-{k}", [f for f in nocturnes if f != held_out], [held_out])
        print(held_out.stem, rows[held_out.stem], flush=True)
    rows["Mazurka Op. 6 No. 2 (music21)"] = fold("all5", nocturnes, [mazurka])
    print("\n| held out | frames | scratch | fine-tuned from the base | best n-gram (same 4 pieces) | fine-tuned vs "
          "scratch | fine-tuned vs n-gram |\n|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        ngram = r["scratch n-gram"]
        print(f"| {name} | {r['frames']:,} | {r['scratch']:.3f} | {r['fine-tuned']:.3f} | {ngram:.3f} | "
              f"{100 * (1 - r['fine-tuned'] / r['scratch']):.1f}% lower | {100 * (1 - r['fine-tuned'] / ngram):.1f}% "
              "lower |")
    tot = {k: sum(r[k] * r["frames"] for r in rows.values()) / sum(r["frames"] for r in rows.values())
           for k in ("scratch", "fine-tuned", "scratch n-gram")}
    print(f"| all (frame-weighted) | {sum(r['frames'] for r in rows.values()):,} | {tot['scratch']:.3f} | "
          f"{tot['fine-tuned']:.3f} | {tot['scratch n-gram']:.3f} | {100 * (1 - tot['fine-tuned'] / tot['scratch']):.1f}% "
          f"lower | {100 * (1 - tot['fine-tuned'] / tot['scratch n-gram']):.1f}% lower |")
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in t.items()))
    (a.work / "finetune.json").write_text(json.dumps({"rows": rows, "total": tot, "base": str(base)}, indent=1))


if __name__ == "__main__":
    main()
