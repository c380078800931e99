"""The four polyphonic benchmarks: our frames models beside the published rows, in nats per frame.

Run:  .venv/bin/python bench/bench_polyphonic.py [--corpora jsb,nottingham,musedata,piano-midi]
          [--minutes 30,60,60,45] [--threads 0] [--work bench/out/polyphonic] [--cell gru] [--keep]

For each corpus file in ``../shared/data/polyphonic/`` it runs the three documented commands, each
timed (wall clock), with the shipped ``frames`` defaults::

    python cli.py extract ../shared/data/polyphonic/<corpus>.mat --name <corpus> --out <work>/processed
    python cli.py train --data <work>/processed/<corpus> --encoding frames --max-minutes <budget> ...
    python cli.py evaluate --run <work>/runs/<corpus> --data <work>/processed/<corpus> --side validation

and prints our validation figure beside the published test figures (Boulanger-Lewandowski et al.
2012; Chung et al. 2014; Bai, Kolter & Koltun 2018). The shared files hold train and validation only:
the test sets are scored independently with ``cli.py evaluate`` on the held-back files, and
defaults were chosen on validation. The n-gram baselines, fitted on the same training pieces,
are printed in the same unit: the baseline measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import shared

CORPORA = {"jsb": "jsb-chorales.mat", "nottingham": "nottingham.mat", "musedata": "musedata.mat",
           "piano-midi": "piano-midi.mat"}
BUDGETS = {"jsb": 30, "nottingham": 60, "musedata": 60, "piano-midi": 45}  # minutes (issue 19)
# Published test-set negative log-likelihoods, nats per frame (lower is better). See docs/bench/polyphonic.md
# for the sources and which figures were checked against the papers from here.
PUBLISHED = [
    ("RNN-NADE (HF), Boulanger-Lewandowski et al. 2012", {"jsb": 5.56, "nottingham": 2.31, "musedata": 5.60,
                                                          "piano-midi": 7.05}),
    ("RNN-RBM, Boulanger-Lewandowski et al. 2012", {"jsb": 6.27, "nottingham": 2.39, "musedata": 6.01,
                                                    "piano-midi": 7.09}),
    ("GRU, Chung et al. 2014", {"jsb": 8.54}),
    ("LSTM, Chung et al. 2014", {"jsb": 8.67}),
    ("tanh RNN, Chung et al. 2014", {"jsb": 9.19}),
    ("GRU, Bai et al. 2018", {"jsb": 8.43, "nottingham": 3.46}),
    ("LSTM, Bai et al. 2018", {"jsb": 8.45, "nottingham": 3.29}),
    ("RNN, Bai et al. 2018", {"jsb": 8.91, "nottingham": 4.05}),
    ("TCN, Bai et al. 2018", {"jsb": 8.10, "nottingham": 3.07}),
]


def cli(args: list[str], log: Path) -> float:
    """Run ``python cli.py ARGS`` in the repository, its output appended to ``log``; wall seconds."""
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"$ python cli.py {' '.join(args)}\n")
        f.flush()
        out = subprocess.run([sys.executable, "cli.py", *args], cwd=shared.ROOT, stdout=f, stderr=subprocess.STDOUT)
    if out.returncode:
        sys.exit(f"failed: python cli.py {' '.join(args)} (see {log})")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--minutes", default="", help="budgets per corpus, comma-separated (default: 30,60,60,45)")
    ap.add_argument("--threads", default="0", help="torch threads per run (0 = torch's default)")
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--layers", default="", help="override the frames default (else not given)")
    ap.add_argument("--hidden", default="", help="override the frames default (else not given)")
    ap.add_argument("--work", type=Path, default=shared.ROOT / "bench" / "out" / "polyphonic")
    ap.add_argument("--keep", action="store_true", help="reuse finished runs and evaluations in --work")
    a = ap.parse_args()
    names = a.corpora.split(",")
    minutes = dict(zip(names, map(float, a.minutes.split(",")))) if a.minutes else BUDGETS
    data = shared.require(shared.POLYPHONIC)
    a.work.mkdir(parents=True, exist_ok=True)
    log = a.work / "bench.log"
    ours = {}
    for name in names:
        dataset, run = a.work / "processed" / name, a.work / "runs" / name
        seconds = {}
        if not (a.keep and (run / "eval").is_dir()):
            seconds["extract"] = cli(["extract", str(data / CORPORA[name]), "--name", name, "--out",
                                      str(a.work / "processed")], log)
            shape = [*(["--layers", a.layers] if a.layers else []), *(["--hidden", a.hidden] if a.hidden else [])]
            seconds["train"] = cli(["train", "--data", str(dataset), "--encoding", "frames", "--cell", a.cell, *shape,
                                    "--max-minutes", str(minutes[name]), "--epochs", "1000", "--threads", a.threads,
                                    "--runs", str(a.work / "runs"), "--name", name], log)
            seconds["evaluate"] = cli(["evaluate", "--run", str(run), "--data", str(dataset), "--side", "validation"],
                                      log)
        result = json.loads(max((run / "eval").glob("*.json"), key=lambda p: p.stat().st_mtime).read_text())
        status = json.loads((run / "status.json").read_text())
        ours[name] = {"nats_per_frame": result["nats_per_frame"], "frames": result["frames"],
                      "best_ngram": min(result["baseline_nats_per_frame"].values()),
                      "epochs": status.get("epoch"), "seconds": seconds, "scored": result["nats_per_frame_scored"]}
        print(f"{name}: {result['nats_per_frame']:.3f} nats/frame on {result['frames']:,} validation frames "
              f"(best n-gram {ours[name]['best_ngram']:.3f}); "
              + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()), flush=True)
    cols = [n for n in CORPORA if n in ours]
    print("\n| model | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    print("| **ours: frames, " + a.cell.upper() + " (validation)** | "
          + " | ".join(f"**{ours[n]['nats_per_frame']:.2f}**" for n in cols) + " |")
    print("| best n-gram, same training pieces (validation) | "
          + " | ".join(f"{ours[n]['best_ngram']:.2f}" for n in cols) + " |")
    for label, row in PUBLISHED:
        print(f"| {label} (test) | " + " | ".join(f"{row[n]:.2f}" if n in row else "" for n in cols) + " |")
    (a.work / "polyphonic.json").write_text(json.dumps(ours, indent=1))


if __name__ == "__main__":
    main()
