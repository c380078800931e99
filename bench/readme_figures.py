"""The README's piano rolls: a sample of the demo model next to the real continuation it was primed with.

Usage (after ``make demo``)::

    PYTHONPATH=$PWD .venv/bin/python bench/readme_figures.py --run runs/demo-tsd-gru --out docs/img

Draws ``demo_sample_pianoroll.png`` (sample 0 of ``--temperature``, continuing the opening of the
first held-out chorale, with the rhythm the model wrote) and ``demo_real_pianoroll.png`` (the real
continuation of that chorale, the same number of tokens decoded the same way), both 1200x400.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from shared import ROOT

from pipeline.store.dataset import load_dataset
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.media.pianoroll import piano_roll_png
from pipeline.stages.render import TimingModel, tokens_to_notes
from pipeline.store.rundir import read_run_config, read_timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "demo-tsd-gru")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--length", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = read_run_config(args.run)
    s = generate(args.run, GenerateConfig(count=1, length=args.length, temperature=args.temperature,
                                          seed=args.seed), args.run / "samples" / "readme")
    timing = TimingModel.from_stats(read_timing(args.run))
    piece = s.primer_info["piece"]
    ds = load_dataset(cfg["dataset"], cfg["encoding"])
    base, offset = ds.locate(piece)
    n = len(s.primer)
    real = ds.sequences[base][offset + n:offset + n + args.length]
    what = f"{cfg['cell'].upper()} {cfg['layers']}x{cfg['hidden']}, {cfg['encoding']}"
    for name, tokens, title in (
            ("demo_sample_pianoroll.png", s.samples[0],
             f"sample ({what}, T={args.temperature:g}) continuing the opening of {piece}"),
            ("demo_real_pianoroll.png", real, f"the real continuation of {piece}")):
        notes = tokens_to_notes(tokens, cfg["encoding"], timing, context=s.primer)
        path = piano_roll_png(notes, args.out / name, title=f"{title}: {len(notes)} notes")
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
