"""Extract at scale (issue "Speed and scale"): 1,000 MIDI files, over 2 million notes.

Run:  .venv/bin/python bench/bench_scale.py [--files 1000] [--keep DIR]

Writes a synthetic corpus with symusic: each file is one of the five shared
nocturnes, transposed (-4..+4 semitones), played 0.8-1.2 times as fast, and
played twice in a row (the second time another semitone up), so about 3,300
notes a file, every file different. Then runs ``python cli.py extract`` on it as a subprocess and
reports its wall time and the peak memory of its process tree (the sum of the
resident sizes of the command and its worker processes, sampled every 20 ms from
/proc, Linux only; pages the forked workers share with their parent are counted
in each, so it overstates). The baseline measured in the same run is the same
command on the first tenth of the files: ten times the notes should take less
than ten times as long (start-up is paid once). A second run over the unchanged
corpus shows the per-file cache.

Prints Markdown; goals (60 s, 2 GB) are printed beside the figures, never asserted.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import NOCTURNES, ROOT, require

SPEEDS = (0.8, 0.9, 1.0, 1.1, 1.2)


def synthetic_file(src: Path, out: Path, semitones: int, speed: float, second: int) -> int:
    """Write ``src`` transposed, re-timed and played twice (``second`` semitones up the second
    time); returns its note count."""
    import numpy as np
    import symusic

    score = symusic.Score(src).shift_pitch(semitones)
    for tempo in score.tempos:
        tempo.mspq = round(tempo.mspq / speed)
    length = score.end()
    for track in score.tracks:
        a = track.notes.numpy()
        pitch = np.clip(a["pitch"].astype(np.int64) + second, 0, 127).astype(a["pitch"].dtype)
        track.notes = symusic.Note.from_numpy(np.concatenate([a["time"], a["time"] + length]),
                                              np.concatenate([a["duration"], a["duration"]]),
                                              np.concatenate([a["pitch"], pitch]),
                                              np.concatenate([a["velocity"], a["velocity"]]))
    score.dump_midi(out)
    return score.note_num()


def write_corpus(folder: Path, files: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(require(NOCTURNES).glob("*.mid"))
    notes = 0
    for i in range(files):  # 5 pieces x 9 keys x 5 speeds x 5 second keys: 1,125 different files
        src = sources[i % len(sources)]
        k, speed, second = (i // 5) % 9 - 4, SPEEDS[(i // 45) % len(SPEEDS)], (i // 225) % 5 + 1
        notes += synthetic_file(src, folder / f"{i:04d}_{src.stem}_t{k:+d}_x{speed}_{second}.mid", k, speed, second)
    return notes


def tree_rss(root: int) -> int:
    """Bytes resident in process ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1] is the parent pid
        rss[pid] = int(fields[21]) * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS bytes, last output line) of a command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:4])}... failed:\n{err[-2000:]}")
    return seconds, peak, out.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--keep", type=Path, help="write the corpus and outputs here instead of a temporary folder")
    args = ap.parse_args()
    print(f"## Extract at scale ({platform.node()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}; load average before: "
          f"{os.getloadavg()[0]:.1f})\n")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = args.keep or Path(tmp)
        t0 = time.perf_counter()
        notes = write_corpus(work / "corpus", args.files)
        print(f"- corpus: {args.files:,} files, {notes:,} notes, written with symusic in "
              f"{time.perf_counter() - t0:.1f} s\n")
        extract = [sys.executable, "cli.py", "extract"]
        tenth = work / "tenth"
        tenth.mkdir()
        for f in sorted((work / "corpus").glob("*.mid"))[:args.files // 10]:
            (tenth / f.name).symlink_to(f)
        small_s, small_rss, small_line = run_measured(extract + [str(tenth), "--name", "tenth",
                                                                 "--out", str(work / "out-tenth")])
        big_s, big_rss, big_line = run_measured(extract + [str(work / "corpus"), "--name", "scale",
                                                           "--out", str(work / "out")])
        again_s, again_rss, again_line = run_measured(extract + [str(work / "corpus"), "--name", "scale",
                                                                 "--out", str(work / "out")])
        small_notes = int(small_line.split(" notes;")[0].split(", ")[-1].replace(",", ""))
        print("| `cli.py extract`, whole command | seconds | peak RSS, process tree | µs a note | "
              "time / time for a tenth |\n|---|---:|---:|---:|---:|")
        print(f"| first tenth: {args.files // 10:,} files ({small_notes:,} notes) | {small_s:.1f} | "
              f"{small_rss / 2**20:.0f} MiB | {1e6 * small_s / small_notes:.1f} | 1 |")
        print(f"| all {args.files:,} files ({notes:,} notes); goal 60 s, 2 GB | {big_s:.1f} | "
              f"{big_rss / 2**20:.0f} MiB | {1e6 * big_s / notes:.1f} | {big_s / small_s:.1f} |")
        print(f"| again, every file unchanged (per-file cache) | {again_s:.1f} | {again_rss / 2**20:.0f} MiB | "
              f"{1e6 * again_s / notes:.1f} | {again_s / small_s:.1f} |")
        print(f"\n(extract said: `{big_line}`; the second time: `{again_line}`)")

if __name__ == "__main__":
    main()
