"""How far symusic's ABC reader (abc2midi) agrees with music21's, tune by tune.

Run:  .venv/bin/python bench/compare_abc_readers.py [--corpus oneills1850] [--limit N] [--workers 2]

For every tune of the corpus, the note table from ``abc_io.tune_to_notes_symusic``
(abc2midi, as played) is compared with ``abc_io.tune_to_notes`` (music21, as written):

exact          the same pitch sequence (onset order, chords low to high)
repeats        the same once repeats are accounted for: the played sequence is the
               written one cut into stretches and replayed in order, no more than
               two stretches per repeat sign in the text, every written note
               played
then, for the tunes that still differ, an explanation, found by giving both readers
the same text with these taken out of the tune body:
ties           a tie ``-``. Typically between notes of *different* pitch, which
               some transcribers write for a slur: music21 merges the two into
               one note of the first pitch, abc2midi plays both
grace notes    ``{...}``: music21 drops them; abc2midi plays them, taking their
               time from the next note
decorations    ``~`` (roll) and ``T`` (trill), which abc2midi plays as ornament
               notes; ``H`` (fermata), which abc2midi holds and before which
               music21 loses the note; the other one-letter decorations and
               ``!...!``
annotations    quoted text that is not a chord symbol (``">"``, ``"^text"``):
               music21 loses the note after it
the table counts these tunes as "edits" (whatever the combination: the
difference is within what the tune's ties, grace notes, decorations and
annotations explain), and the line above it how often each was involved. Of
the rest,
accidentals    agree when a pitch may differ by one or two semitones at no more
               than 10 % of the notes: music21 does not carry an accidental to
               the later notes of its bar (ABC 2.1 says it lasts to the bar line)
other          none of these; examples are printed

Onsets are compared too (each replayed stretch keeps the written onsets, shifted
as a whole), and reported beside the pitch figures. Counted as a music21 failure:
a tune music21 cannot parse, or parses to no note.

music21 is slow (about 0.15 s a tune), so its tables are kept, by tune text, in
``bench/out/abc-readers-<corpus>.pkl`` and computed again only with --fresh.
Prints Markdown; the exit status does not depend on the figures.
"""
from __future__ import annotations

import argparse
import collections
import os
import pickle
import platform
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from shared import ROOT

import numpy as np

from pipeline.inputs import abc_io
from pipeline.core.errors import AbcParseError

REPEAT_SIGN = re.compile(r":\||\|:|::|\[\d|\|\d")
GRACE = re.compile(r"\{[^}]*\}")
# in a body line, kept as they are: quoted text, inline fields ([K:D]) and comments
KEEP = r'"[^"]*"|\[[A-Za-z]:[^\]\n]*\]|%.*$'
MARKS = {"ties": re.compile(KEEP + r"|-", re.MULTILINE),
         "grace notes": re.compile(KEEP + r"|\{[^}\n]*\}", re.MULTILINE),
         "decorations": re.compile(KEEP + r"|![^!\n]*!|\+[^+\n]*\+|[~HLMOPSTuv]", re.MULTILINE),
         "annotations": re.compile(r'"[<>^_@][^"\n]*"|\[[A-Za-z]:[^\]\n]*\]|%.*$', re.MULTILINE)}
EDITS = tuple(MARKS)
FIELD_LINE = re.compile(r"^[A-Za-z+]:")
SIMPLE = ("exact", "repeats", "other", "music21 fails", "symusic fails", "both fail")


def edit_body(text: str, what: str) -> str:
    """The tune with one of :data:`MARKS` (e.g. ``"ties"``) taken out of the body."""
    out, body = [], False
    for line in text.splitlines():
        if body and not FIELD_LINE.match(line):
            keep = '[%' if what == "annotations" else '"[%'
            line = MARKS[what].sub(lambda m: m.group() if m.group()[0] in keep else "", line)
        body = body or line.startswith("K:")
        out.append(line)
    return "\n".join(out)


def sequence(df) -> tuple[np.ndarray, np.ndarray]:
    """Pitches and onsets (beats) in onset order, chord notes low to high."""
    df = df.sort_values(["start_beat", "pitch"], kind="stable")
    return df["pitch"].to_numpy(), df["start_beat"].to_numpy()


def stretches(played: np.ndarray, written: np.ndarray, slack: int = 0) -> list[tuple[int, int, int]] | None:
    """Cut ``played`` greedily into the longest stretches found in ``written``.

    Pitches match when they differ by at most ``slack`` semitones. Taking the
    longest stretch each time gives the fewest stretches; among equally long
    ones, the one covering most written notes not used yet (so that a second
    ending is matched to itself, not to an earlier phrase like it). Returns
    ``(start_in_played, start_in_written, length)`` per stretch, or None when
    some played note is not in ``written`` at all.
    """
    out, i, n, m = [], 0, len(played), len(written)
    used = np.zeros(m, bool)
    while i < n:
        lengths = np.zeros(m, int)
        for j in range(m):
            k = 0
            while i + k < n and j + k < m and abs(int(played[i + k]) - int(written[j + k])) <= slack:
                k += 1
            lengths[j] = k
        best = int(lengths.max()) if m else 0
        if best == 0:
            return None
        at = max(np.flatnonzero(lengths == best), key=lambda j: (int((~used[j:j + best]).sum()), -j))
        out.append((i, int(at), best))
        used[at:at + best] = True
        i += best
    return out


def compare(written, played, text: str, slack: int = 0) -> tuple[str | None, bool]:
    """('exact' | 'repeats' | None, onsets_agree) for one tune's two tables.

    With ``slack``, pitches may differ by that many semitones at no more than
    10 % of the played notes.
    """
    if written is None or played is None:
        return None, False
    wp, wo = sequence(written)
    pp, po = sequence(played)
    if len(wp) == len(pp) and (wp == pp).all():
        return "exact", bool(np.allclose(wo, po, atol=1e-6))
    for backwards in (False, True):  # a greedy cut from the end finds second endings the other misses
        if backwards:
            wp, wo, pp, po = wp[::-1], -wo[::-1], pp[::-1], -po[::-1]
        cuts = stretches(pp, wp, slack)
        if cuts is None:
            return None, False
        covered = np.zeros(len(wp), bool)
        off = 0
        for i, j, k in cuts:
            covered[j:j + k] = True
            off += int((pp[i:i + k] != wp[j:j + k]).sum())
        if covered.all() and len(cuts) <= 1 + 2 * len(REPEAT_SIGN.findall(text)) and off <= 0.1 * len(pp):
            break
    else:
        return None, False
    if len(cuts) == 1 and len(wp) == len(pp):
        return "exact", bool(np.allclose(wo, po, atol=1e-6))
    onsets = all(np.allclose(po[i:i + k] - po[i], wo[j:j + k] - wo[j], atol=1e-6) for i, j, k in cuts)
    return "repeats", bool(onsets)


def music21_table(text: str):
    try:
        return text, abc_io.tune_to_notes(abc_io.AbcTune(text=text), "t"), None
    except AbcParseError as exc:
        return text, None, str(exc)


def symusic_table(text: str):
    try:
        return abc_io.tune_to_notes_symusic(abc_io.AbcTune(text=text), "t"), None
    except AbcParseError as exc:
        return None, str(exc)


class Music21Cache:
    """music21 note tables by tune text, parsed in a process pool, kept in a pickle."""

    def __init__(self, path: Path, workers: int, fresh: bool):
        self.path, self.workers, self.seconds, self.parsed = path, workers, 0.0, 0
        self.tables = {} if fresh or not path.exists() else pickle.loads(path.read_bytes())

    def fill(self, texts: list[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self.tables))
        if not todo:
            return
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            for text, df, err in pool.map(music21_table, todo, chunksize=8):
                self.tables[text] = (df, err)
        self.seconds += time.perf_counter() - t0
        self.parsed += len(todo)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(pickle.dumps(self.tables))

    def __getitem__(self, text: str):
        return self.tables[text]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="oneills1850")
    ap.add_argument("--limit", type=int, default=None, help="only the first N tunes")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for music21")
    ap.add_argument("--fresh", action="store_true", help="parse with music21 again, ignoring the cache")
    ap.add_argument("--examples", type=int, default=8, help="examples printed per outcome")
    ap.add_argument("--only", help="comma-separated X: numbers: compare just these tunes")
    args = ap.parse_args()

    tunes = abc_io.bundled_corpus_tunes(args.corpus, limit=args.limit)
    if args.only:
        wanted = {int(x) for x in args.only.split(",")}
        tunes = [t for t in tunes if t.number in wanted]
    texts = [t.text for t in tunes]
    m21 = Music21Cache(ROOT / "bench" / "out" / f"abc-readers-{args.corpus}.pkl", args.workers, args.fresh)
    m21.fill(texts)
    t0 = time.perf_counter()
    fast = [symusic_table(text) for text in texts]
    fast_s = time.perf_counter() - t0

    outcome, onsets, examples = [None] * len(tunes), [False] * len(tunes), collections.defaultdict(list)
    for i, text in enumerate(texts):
        (written, m21_err), (played, fast_err) = m21[text], fast[i]
        if written is None or played is None:
            outcome[i] = ("both fail" if written is None and played is None
                          else "music21 fails" if written is None else "symusic fails")
            examples[outcome[i]].append(f"X:{tunes[i].number} {tunes[i].title!r}: {m21_err or fast_err}")
            continue
        outcome[i], onsets[i] = compare(written, played, text)

    # explanations for the rest: both readers get the text with ties, grace notes and decorations taken out
    rest = [i for i, o in enumerate(outcome) if o is None]
    edited = {}
    for i in rest:
        edited[i] = texts[i]
        for what in EDITS:
            edited[i] = edit_body(edited[i], what)
    m21.fill(list(edited.values()))
    for i in rest:
        had = [what for what in EDITS if edit_body(texts[i], what) != texts[i]]
        written, played = m21[edited[i]][0], symusic_table(edited[i])[0]
        for slack, label in ((0, " + ".join(had)), (2, " + ".join(["accidentals", *had]))):
            kind, ok = compare(written, played, texts[i], slack)
            if kind and label:
                outcome[i], onsets[i] = label, ok
                break
        else:
            outcome[i] = "other"
            wp, pp = sequence(m21[texts[i]][0])[0], sequence(fast[i][0])[0]
            examples["other"].append(f"X:{tunes[i].number} {tunes[i].title!r}: music21 {len(wp)} notes, "
                                     f"abc2midi {len(pp)}; first 12: {wp[:12].tolist()} vs {pp[:12].tolist()}")

    # the combinations of explanations, folded for the table: "edits" and "accidentals (+ edits)"
    folded = ["accidentals" if o and o.startswith("accidentals") else o if o in SIMPLE else "edits" for o in outcome]
    counts, agree_onsets = collections.Counter(folded), collections.Counter(f for f, ok in zip(folded, onsets) if ok)
    features = collections.Counter(w for o in outcome if o not in SIMPLE for w in o.split(" + "))
    n = len(tunes)
    both = n - counts["both fail"] - counts["music21 fails"] - counts["symusic fails"]

    def share(k: int) -> str:
        return f"{k} of {both} = {100 * k / max(both, 1):.1f} %"

    agreeing = ("exact", "repeats", "edits", "accidentals")
    print(f"## ABC readers on {args.corpus}: symusic (abc2midi) vs music21\n")
    print(f"{platform.node()}, {platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n")
    print(f"- tunes: {n}; read by both: {both}; symusic read all {n} in {fast_s:.1f} s in one process; "
          + (f"music21 parsed {m21.parsed} texts in {m21.seconds:.1f} s on {args.workers} workers"
             if m21.parsed else "music21 tables from the cache"))
    print(f"- same pitches, as written or once repeats are expanded: {share(counts['exact'] + counts['repeats'])}; "
          f"onsets too: {share(agree_onsets['exact'] + agree_onsets['repeats'])}")
    print(f"- same pitches once ties, grace notes, decorations, annotations and accidentals are accounted for too: "
          f"{share(sum(counts[k] for k in agreeing))}; onsets too: {share(sum(agree_onsets[k] for k in agreeing))}")
    print("- tunes explained by each (alone or with others): "
          + ", ".join(f"{k} {v}" for k, v in features.most_common()) + "\n")
    print("| outcome | tunes | onsets agree too |\n|---|---:|---:|")
    for kind in (*agreeing, "other", "music21 fails", "symusic fails", "both fail"):
        print(f"| {kind} | {counts[kind]} | {agree_onsets[kind] if kind in agreeing else ''} |")
    for kind, lines in examples.items():
        print(f"\n{kind} ({len(lines)}), first {min(len(lines), args.examples)}:")
        for line in lines[:args.examples]:
            print(f"- {line}")


if __name__ == "__main__":
    main()
