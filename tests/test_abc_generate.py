"""ABC tunebooks end to end: extract -> chars -> tiny model -> tunes, validity, sheet music, baselines."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from cli import main
from pipeline.inputs import abc_io
from pipeline.measures.abc_eval import (SUMMARY_COLUMNS, VALIDITY_COLUMNS,
                               score_sample_folder, summarise_validity, validate_tunes)
from pipeline.codecs import END, START, decode_chars
from bench.abc_tools import char_ngram_baseline, generation_speed
from pipeline.media.engrave import available_engraver
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.stages.generate import GenerateConfig, generate
from pipeline.stages.render import RenderConfig, render_samples
from pipeline.store.rundir import TrainConfig
from pipeline.stages.train import train

SCALE = "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|"
TUNES = [
    SCALE,
    "X:2\nT:Down\nM:4/4\nL:1/4\nK:C\ncBAG|FEDC|",
    "X:3\nT:Jig\nM:6/8\nL:1/8\nK:G\nGAB c2d|e2d cBA|G3 G3|",
    "X:4\nT:Waltz\nM:3/4\nL:1/4\nK:D\nDFA|d2c|BAG|F3|",
    "X:5\nT:Reel\nM:4/4\nL:1/8\nK:D\nd2fd Adfd|g2bg fgaf|",
    "X:6\nT:Air\nM:3/4\nL:1/4\nK:F\nFAc|f2e|dcB|A3|",
]
BROKEN = "X:7\nT:Broken\nM:4/4\nL:1/4\nK:C\nC[EG|F"  # a chord that never closes
NO_KEY = "X:7\nT:Broken\nM:4/4\nL:1/4\nCDEF|GABc|"  # no K: field: abc2midi (extract's reader) plays nothing
WINDOW = 8


def write_book(path: Path, tunes: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("%abc-2.1\n% a header that belongs to no tune\n\n" + "\n\n".join(tunes) + "\n")
    return path


def run_extract(book: Path, out: Path, name: str, abc_header: str = "music") -> Path:
    extract([book], ExtractConfig(name=name, out=str(out), workers=1, abc_header=abc_header))
    return out / name


@pytest.fixture(scope="module")
def tunes_dataset(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("abc")
    return run_extract(write_book(tmp / "book.abc", TUNES), tmp / "processed", "book")


@pytest.fixture(scope="module")
def chars_run(tunes_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "chars"
    train(TrainConfig(dataset=str(tunes_dataset), encoding="chars", cell="lstm", layers=1, hidden=16, embed=8,
                      window=WINDOW, stride=4, batch=16, epochs=1, threads=1, seed=0), run)
    return run


@pytest.fixture
def ends_at_once(chars_run, tmp_path) -> Path:
    """A copy of the tiny run whose head always says <end> (a hand-set bias)."""
    run = tmp_path / "ends"
    shutil.copytree(chars_run, run)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    end = ckpt["vocab"].index(END)
    ckpt["model"]["head.bias"][end] = 50.0
    torch.save(ckpt, run / "best.pt")
    return run


# --------------------------------------------------------------------------- extract

@pytest.mark.parametrize("header", ["music", "full"])
def test_two_tune_book_to_framed_chars_and_back(tmp_path, header):
    book = write_book(tmp_path / "two.abc", TUNES[:2])
    folder = run_extract(book, tmp_path / "processed", "two", header)
    seqs = json.loads((folder / "chars" / "sequences.json").read_text())["pieces"]
    vocab = json.loads((folder / "chars" / "vocab.json").read_text())
    assert sorted(seqs) == ["two#1", "two#2"]
    texts = [t.text for t in abc_io.split_tunebook(book.read_text())]
    for piece, text in zip(["two#1", "two#2"], texts):
        seq = seqs[piece]
        assert seq[0] == START and seq[-1] == END and START not in seq[1:-1] and END not in seq[1:-1]
        assert decode_chars(seq) == (abc_io.music_text(text) if header == "music" else text)
    assert texts == TUNES[:2]
    assert {START, END} <= set(vocab) and "\n" in vocab
    split = json.loads((folder / "split.json").read_text())
    assert sorted(split["train"] + split["validation"]) == ["two#1", "two#2"] and split["validation"]


def test_broken_tune_is_counted_listed_and_skipped(tmp_path):
    book = write_book(tmp_path / "book.abc", [TUNES[0], NO_KEY, TUNES[2]])
    folder = run_extract(book, tmp_path / "processed", "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    [entry] = manifest["files"]
    assert entry["status"] == "ok" and entry["pieces"] == 2
    [unit] = entry["skipped_units"]
    assert unit["tune"] == "book#7" and unit["title"] == "Broken" and unit["reason"]
    assert manifest["totals"]["dropped"]["unparseable tune"] == 1
    seqs = json.loads((folder / "chars" / "sequences.json").read_text())["pieces"]
    assert sorted(seqs) == ["book#1", "book#3"]


# --------------------------------------------------------------------------- sampling

def test_tiny_chars_model_samples_stop_at_end_or_limit(chars_run):
    res = generate(chars_run, GenerateConfig(count=6, length=40, temperature=1.0, primer="start", seed=3))
    assert res.primer == [START] and len(res.samples) == 6
    for s in res.samples:
        assert len(s) <= 40 and END not in s[:-1]
        assert s[-1] == END or len(s) == 40


def test_forced_end_gives_empty_ended_tunes(ends_at_once):
    res = generate(ends_at_once, GenerateConfig(count=3, length=500, primer="start"))
    assert res.samples == [[END]] * 3
    table = score_sample_folder(res.folder)
    assert table["ended"].all() and (table["length"] == 0).all() and not table["parses"].any()
    assert (table["error"] == "empty tune text").all()


def test_generation_speed_batch_vs_single(chars_run):
    speed = generation_speed(chars_run, count=3, length=20)
    for way in ("batch", "single"):
        assert speed[way]["chars"] > 0 and speed[way]["chars_per_s"] > 0
    assert speed["speedup"] > 0 and speed["count"] == 3


# --------------------------------------------------------------------------- validity

def test_validity_of_good_and_bad_tunes():
    table = validate_tunes([SCALE, BROKEN, "", "%%% not abc at all"], [True, False, True, False])
    assert list(table.columns) == VALIDITY_COLUMNS and len(table) == 4
    good, bad = table.iloc[0], table.iloc[1]
    assert good["parses"] and good["to_midi"] and good["all_bars_match"] and good["ended"]
    assert good["bars_total"] == good["bars_matching"] == 2 and good["bar_fraction"] == 1.0
    assert pd.isna(good["error"]) and good["length"] == len(SCALE) and good["meter"] == "4/4"
    assert not bad["parses"] and not bad["to_midi"] and not bad["ended"] and "music21" in bad["error"]
    assert not table.iloc[2:]["parses"].any() and table.iloc[2:]["error"].notna().all()

    summary = summarise_validity({0.5: table, 1.0: table.iloc[:1], 2.0: table.iloc[:0]})
    assert list(summary.columns) == SUMMARY_COLUMNS
    half = summary.iloc[0]
    assert half["tunes"] == 4 and half["pct_parses"] == 25 and half["pct_midi"] == 25
    assert half["pct_bars_matching"] == 100 and half["pct_all_bars_match"] == 25 and half["pct_ended"] == 50
    assert summary.iloc[1]["pct_parses"] == 100
    empty = summary.iloc[2]
    assert empty["tunes"] == 0 and math.isnan(empty["pct_parses"]) and math.isnan(empty["pct_bars_matching"])


def test_validity_of_no_tunes():
    table = validate_tunes([], [])
    assert table.empty and list(table.columns) == VALIDITY_COLUMNS
    with pytest.raises(ValueError):
        validate_tunes(["X:1"], [])


# --------------------------------------------------------------------------- CLI

def test_cli_generate_chars_writes_tunes_validity_and_sheet_music(ends_at_once, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    primer = SCALE.replace("\n", "\\n")  # as typed in a shell
    res = CliRunner().invoke(main, ["generate", "--run", str(ends_at_once), "--count", "2", "--temperature", "0.5,1",
                                    "--primer-tokens", primer], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert "validity_summary.csv" in lines[-1] and "| T " in res.output
    assert "primer written as the model reads tunes" in res.output
    engraver = available_engraver()
    for tag in ("t0.5-s0", "t1-s0"):
        folder = ends_at_once / "samples" / tag
        assert json.loads((folder / "samples.json").read_text())["config"]["length"] == 1000  # chars default
        for i in range(2):
            # the primer as the model reads tunes (no X:/T:), made a tunebook entry again in the file
            tune = abc_io.music_text(SCALE)
            assert (folder / f"sample_{i:03d}.abc").read_text() == f"X:{i + 1}\nT:Sample {i}\n{tune}\n"
            assert (folder / f"sample_{i:03d}.mid").exists()
            assert (folder / f"sample_{i:03d}.svg").exists() == (engraver is not None)
        table = pd.read_csv(folder / "validity.csv")
        assert len(table) == 2 and table["parses"].all() and table["to_midi"].all() and table["ended"].all()
        assert (table["length"] == len(abc_io.music_text(SCALE))).all()
    summary = pd.read_csv(ends_at_once / "samples" / "validity_summary.csv")
    assert summary["temperature"].tolist() == [0.5, 1.0] and (summary["pct_parses"] == 100).all()
    assert (ends_at_once / "samples" / "validity_summary.md").read_text().startswith("| T ")

    # `render` on a chars folder: MIDI for the playable tunes, the primer text included
    files = render_samples(ends_at_once / "samples" / "t1-s0", RenderConfig(audio="none", piano_roll=False)).files
    assert [f["midi"] for f in files] == ["sample_000.mid", "sample_001.mid"]

    res = CliRunner().invoke(main, ["generate", "--run", str(ends_at_once), "--count", "1", "--no-engrave",
                                    "--no-render", "--primer-tokens", primer, "--seed", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    folder = ends_at_once / "samples" / "t1-s1"
    assert (folder / "sample_000.abc").exists() and (folder / "validity.csv").exists()
    assert not (folder / "sample_000.mid").exists() and not (folder / "sample_000.svg").exists()


# --------------------------------------------------------------------------- baseline

def test_char_ngram_baseline_on_the_models_targets(tunes_dataset):
    res = char_ngram_baseline(tunes_dataset, WINDOW)
    assert list(res) == ["3-gram", "5-gram", "7-gram"]
    for r in res.values():
        assert math.isfinite(r["loss"]) and r["loss"] > 0 and 0 <= r["acc"] <= 1
        assert r["targets"] == r["total_targets"] > 0
    few = char_ngram_baseline(tunes_dataset, WINDOW, orders=(2,), max_targets=5)
    assert few["2-gram"]["targets"] == 5 < few["2-gram"]["total_targets"]
