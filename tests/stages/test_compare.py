"""The comparison page: contents, blind mode, errors, the CLI, and the page in headless Chromium."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.core.errors import ConfigError
from pipeline.stages.compare import CompareConfig, compare, default_out_dir, expand_runs, flags
from pipeline.stages.extract import ExtractConfig, extract
from pipeline.stages.train import train
from pipeline.store.page import ANSWERS_KIND, ANSWERS_VERSION
from pipeline.store.rundir import TrainConfig

CHROMIUM = "/usr/bin/chromium"

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]

TINY = CompareConfig(temperatures=(0.5, 1.0), count=1, length=16, seed=3)


@pytest.fixture(scope="session")
def tiny_set(write_pm):
    """``tiny_set(folder, name, shift=0)``: four pieces of 50 random-walk notes (one chord every 5th onset),
    extracted as ``name``."""
    def make(folder: Path, name: str, shift: int = 0) -> Path:
        rng = np.random.default_rng(11)
        paths = []
        for k in range(4):
            pitches = 60 + shift + np.cumsum(rng.integers(-2, 3, 50)).clip(-10, 10)
            notes = [(int(p), 0.4 * i, 0.4 * i + 0.35) for i, p in enumerate(pitches)]
            notes += [(int(p) - 12, 0.4 * i, 0.4 * i + 0.7) for i, p in enumerate(pitches) if i % 5 == 0]
            paths.append(write_pm(folder / "midi" / name / f"piece{k}.mid", notes))
        extract(paths, ExtractConfig(name=name, out=str(folder / "processed"), workers=1))
        return folder / "processed" / name
    return make


def tiny_run(dataset: Path, run: Path, cell: str, **kw) -> Path:
    opts = dict(dataset=str(dataset), encoding="names", cell=cell, layers=1, hidden=8, embed=8, window=8, stride=4, batch=32,
                epochs=1, threads=1, seed=1)
    train(TrainConfig(**{**opts, **kw}), run)
    return run


@pytest.fixture(scope="module")
def runs(tiny_set, tmp_path_factory) -> Path:
    """runs/rnn and runs/gru on one tiny dataset."""
    tmp = tmp_path_factory.mktemp("compare")
    data = tiny_set(tmp, "tiny")
    for cell in ("rnn", "gru"):
        tiny_run(data, tmp / "runs" / cell, cell)
    return tmp / "runs"


@pytest.fixture(scope="module")
def page(runs) -> dict:
    return compare([runs / "rnn", runs / "gru"], TINY, runs / "page")


def test_config_saves_and_loads(runs, page):
    assert CompareConfig.load(Path(page["folder"]) / "compare.json") == TINY
    assert default_out_dir([runs / "rnn"], TINY) == default_out_dir([runs / "rnn"], replace(TINY))
    assert default_out_dir([runs / "rnn"], TINY) != default_out_dir([runs / "gru"], TINY)
    assert expand_runs([runs]) == [runs / "gru", runs / "rnn"]  # a folder of runs, like a grid's


def test_flags_mark_collapse_and_copying():
    assert flags({"longest_repeat_run": 8, "pitch_entropy": 1.0, "ngram_copy_rate": 0.1}) == ["collapse"]
    assert flags({"longest_repeat_run": 2, "pitch_entropy": 0.0, "ngram_copy_rate": 0.9}) == [
        "collapse", "copies training"]
    assert flags({"longest_repeat_run": 2, "pitch_entropy": 2.0, "ngram_copy_rate": float("nan")}) == []


def test_page_has_every_sample_the_reference_and_the_metrics(runs, page):
    folder = Path(page["folder"])
    html = (folder / "index.html").read_text()
    names = [c["name"] for c in page["columns"]]
    assert names[:2] == ["rnn", "gru"] and "rnn" in html and "GRU 1×8" in html
    # the n-gram sampler is a column of its own, its order chosen by validation loss
    ngram = page["columns"][2]
    assert ngram["cell"] == "ngram" and names[2] == f"{ngram['order']}-gram" and "n-gram sampler" in html
    assert ngram["order"] in range(2, 7) and ngram["ngram_val_loss"] > 0
    assert html.count("<audio") == 3 * 2 * 1 + 2  # (models + n-gram) × temperatures × count + primer + real
    assert "Real continuation" in html and "Summary" in html and "http" not in html
    for ref in (folder / "assets").iterdir():
        assert f"assets/{ref.name}" in html
    table = pd.read_csv(folder / "metrics.csv")
    assert len(table) == 7 and set(table["column"]) == {"A", "B", "C", "real"}
    rhythm = ("polyphony", "polyphony_rate", "empty_beat_rate", "groove_consistency",
              "onset_gap_histogram_distance", "duration_histogram_distance")
    for key in ("pitch_range", "n_pitch_classes_used", "pitch_class_histogram_distance",
                "interval_distribution_distance", "scale_consistency", "longest_repeat_run", "repetition_rate",
                "ngram_copy_rate", *rhythm):
        assert key in table
    for key in rhythm:  # every column, the real continuation too, and in the summary table on the page
        assert table[key].notna().all(), key
    assert "onset-gap dist." in html and "polyphony" in html and "groove consist." in html
    samples = json.loads((folder / "samples.json").read_text())
    primer = json.loads((runs / "rnn" / "primers.json").read_text())[page["piece"]][:8]
    assert samples["primer"] == primer and len(samples["real"]) == 16
    assert page["summary"]["column"].tolist() == ["A", "A", "B", "B", "C", "C", "real"]
    assert len(samples["samples"]["C"]["1"][0]) == 16  # the n-gram's tokens are kept like the models'


@pytest.mark.slow
def test_timed_encoding_page_plays_learned_rhythm(runs, tmp_path):
    """A tsd run: samples decode with their own timing, chords sound together, the n-gram speaks tsd."""
    import mido

    data = runs.parent / "processed" / "tiny"
    run = tiny_run(data, tmp_path / "tsd", "gru", encoding="tsd", window=16)
    res = compare([run], replace(TINY, temperatures=(1.0,), length=40), tmp_path / "page")
    folder = Path(res["folder"])
    table = pd.read_csv(folder / "metrics.csv")
    assert set(table["column"]) == {"A", "B", "real"} and res["columns"][1]["cell"] == "ngram"
    assert table["onset_gap_histogram_distance"].notna().all()
    samples = json.loads((folder / "samples.json").read_text())
    assert all(t.split("_")[0] in ("Pitch", "Duration", "TimeShift") for t in samples["samples"]["B"]["1"][0])
    # the real continuation decodes to the real chords: a bass note under every 5th onset
    real = mido.MidiFile(folder / "assets" / "real.mid")
    onsets, now = {}, 0
    for msg in real.merged_tracks[0] if hasattr(real, "merged_tracks") else mido.merge_tracks(real.tracks):
        now += msg.time
        if msg.type == "note_on" and msg.velocity:
            onsets.setdefault(now, []).append(msg.note)
    assert any(len(v) == 2 for v in onsets.values())
    assert "carry their rhythm" in (folder / "index.html").read_text()


def test_blind_page_hides_the_runs_and_the_key_names_them(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["compare", str(runs / "rnn"), str(runs / "gru"), "--temperature", "1",
                                    "--count", "1", "--length", "8", "--blind", "--seed", "1"])
    assert res.exit_code == 0, res.output
    out = Path(res.output.strip().splitlines()[-1].split("-> ")[1].split("/index.html")[0])
    assert out.parent == Path("runs") and out.name.startswith("compare-")
    page = (out / "index.html").read_text().replace("musicrnn", "")  # the tool's name is no secret
    for secret in ("rnn", "gru", "RNN", "GRU", "val loss", "pitch range", str(runs)):
        assert secret not in page, secret
    assert all(f"Model {c}" in page for c in "ABCD")
    for secret in ("n-gram", "-gram sampler", "Witten", "Real continuation", "real.wav"):
        assert secret not in page, secret  # the n-gram and the real continuation hide behind letters too
    key = json.loads((out / "key.json").read_text())
    assert set(key) == {"A", "B", "C", "D"}
    assert sorted(Path(v["run"]).name for v in key.values() if v["run"]) == ["gru", "rnn"]
    assert sorted(v["cell"] for v in key.values() if not v["run"]) == ["ngram", "real"]
    assert not any("key" in p.name or "real" in p.name for p in (out / "assets").iterdir()) and "key.json" not in page
    assert "run" not in pd.read_csv(out / "metrics.csv")


def test_mismatched_runs_give_one_clean_line(tiny_set, runs, tmp_path):
    pitch_run = tiny_run(runs.parent / "processed" / "tiny", tmp_path / "pitch", "rnn", encoding="pitch")
    with pytest.raises(ConfigError, match="not a comparison page"):
        compare([runs / "rnn"], TINY, runs / "gru")  # an --out that would replace a run
    assert (runs / "gru" / "best.pt").exists()
    with pytest.raises(ConfigError, match="encoding"):
        compare([runs / "rnn", pitch_run], TINY, tmp_path / "out")
    other = tiny_run(tiny_set(tmp_path, "high", shift=30), tmp_path / "high", "rnn")
    res = CliRunner().invoke(main, ["compare", str(runs / "rnn"), str(other), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "not in the vocabulary of high" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


# ------------------------------------------------------------------ the page in a browser

def browser_check(page_path: Path, screenshot: Path) -> dict:
    """Load the page in headless Chromium; report every <audio>'s duration/error and <img>'s width."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1500, "height": 1000})
            tab.goto(page_path.resolve().as_uri(), wait_until="load")
            tab.wait_for_function("[...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)"
                                  " && [...document.images].every(i => i.complete)", timeout=30_000)
            tab.screenshot(path=str(screenshot), full_page=True)
            return tab.evaluate("""() => ({
                audio: [...document.querySelectorAll('audio')].map(a => ({src: a.src, duration: a.duration,
                                                                       error: a.error && a.error.code})),
                img: [...document.images].map(i => ({src: i.src, width: i.naturalWidth}))})""")
        finally:
            browser.close()


def browser_check_without_playwright(page_path: Path, screenshot: Path) -> dict:
    """Fallback: a copy of the page that writes the same report into its DOM, read with --dump-dom."""
    probe = page_path.with_name("probe.html")
    probe.write_text(page_path.read_text().replace("</body>", """<script>
      addEventListener('load', () => setTimeout(() => { document.body.dataset.report = JSON.stringify({
        audio: [...document.querySelectorAll('audio')].map(a => ({src: a.src, duration: a.duration,
                                                               error: a.error && a.error.code})),
        img: [...document.images].map(i => ({src: i.src, width: i.naturalWidth}))}); }, 3000));
    </script></body>"""))
    args = [CHROMIUM, "--headless", *CHROMIUM_ARGS, "--virtual-time-budget=10000"]
    subprocess.run(args + [f"--screenshot={screenshot}", "--window-size=1500,3000", page_path.resolve().as_uri()],
                   capture_output=True, timeout=120)
    dom = subprocess.run(args + ["--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    probe.unlink()
    import html as html_mod
    import re
    found = re.search(r'data-report="([^"]*)"', dom)
    assert found, "the probe script did not report"
    return json.loads(html_mod.unescape(found.group(1)))


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_page_plays_and_shows_in_headless_chromium(page, tmp_path):
    shot = tmp_path / "compare_screenshot.png"
    try:
        import playwright  # noqa: F401
        report = browser_check(Path(page["page"]), shot)
    except ImportError:
        report = browser_check_without_playwright(Path(page["page"]), shot)
    assert len(report["audio"]) == 8 and len(report["img"]) == 8  # primer, real, 3 columns × 2 temperatures
    assert any("C_t1_0" in a["src"] for a in report["audio"])  # the n-gram column plays
    for a in report["audio"]:
        assert a["error"] is None and a["duration"] > 0, a
    for i in report["img"]:
        assert i["width"] > 0, i
    assert shot.stat().st_size > 10_000
    # MUSICRNN_ARTIFACTS=<folder> keeps the screenshot where a person can look at it after the run
    keep = os.environ.get("MUSICRNN_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "compare_screenshot.png")


@pytest.mark.slow
def test_ngram_column_can_be_left_out_or_given_an_order(runs, tmp_path):
    res = CliRunner().invoke(main, ["compare", str(runs / "rnn"), "--temperature", "1", "--count", "1",
                                    "--length", "8", "--no-ngram", "--out", str(tmp_path / "none")])
    assert res.exit_code == 0, res.output
    assert "compared 1 column ×" in res.output
    assert set(pd.read_csv(tmp_path / "none" / "metrics.csv")["column"]) == {"A", "real"}
    page = compare([runs / "rnn"], replace(TINY, temperatures=(1.0,), ngram_order=4), tmp_path / "four")
    assert page["columns"][1]["name"] == "4-gram" and "order given" in (tmp_path / "four" / "index.html").read_text()
    with pytest.raises(ConfigError, match="ngram-order"):
        CompareConfig(ngram_order=-1).validate()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_blind_page_records_answers_that_tally_unblinds(tiny_set, tmp_path, answers_file):
    """Build a blind page, answer it in headless Chromium, reload, export, and tally the export."""
    from playwright.sync_api import sync_playwright

    run = tiny_run(tiny_set(tmp_path, "tiny"), tmp_path / "runs" / "rnn", "rnn")
    built = compare([run], replace(TINY, temperatures=(1.0,), count=2, blind=True), tmp_path / "page")
    folder = Path(built["folder"])
    key = json.loads((folder / "key.json").read_text())
    who = {v["cell"]: letter for letter, v in key.items()}
    real, rnn, ngram = who["real"], who["rnn"], who["ngram"]
    html = (folder / "index.html").read_text().replace("musicrnn", "")  # the tool's name is no secret
    assert "real.wav" not in html and "Real continuation" not in html and "rnn" not in html
    page_id = json.loads((folder / "compare.json").read_text())["page_id"]
    ana = {"t1-s0": ({real: 5, rnn: 2, ngram: 3}, real), "t1-s1": ({real: 4, rnn: 4, ngram: 1}, rnn)}

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", *CHROMIUM_ARGS])
        try:
            tab = browser.new_context(accept_downloads=True).new_page()
            tab.goto((folder / "index.html").resolve().as_uri(), wait_until="load")
            assert tab.locator("audio").count() == 1 + 3 * 2  # the primer; the real continuation in every row
            tab.fill("#listener", "Ana")
            for row, (ratings, pick) in ana.items():
                for letter, value in ratings.items():
                    tab.check(f'input[name="rate:{row}:{letter}"][value="{value}"]')
                tab.check(f'input[name="real:{row}"][value="{pick}"]')
            assert "6 of 6 ratings, 2 of 2" in tab.inner_text("#progress")
            tab.reload(wait_until="load")
            assert tab.input_value("#listener") == "Ana"
            checked = tab.eval_on_selector_all("input:checked", "xs => xs.map(x => [x.name, x.value])")
            assert sorted(checked) == sorted([[f"rate:{r}:{k}", str(v)] for r, (rs, _) in ana.items()
                                              for k, v in rs.items()] + [[f"real:{r}", c] for r, (_, c) in ana.items()])
            with tab.expect_download() as download:
                tab.click("#export")
            exported = tmp_path / download.value.suggested_filename
            download.value.save_as(exported)
        finally:
            browser.close()

    assert exported.name == f"answers-{page_id}-Ana.json"
    data = json.loads(exported.read_text())
    assert (data["format"], data["version"], data["page"], data["listener"]) == (
        ANSWERS_KIND, ANSWERS_VERSION, page_id, "Ana")
    assert data["answers"]["t1-s0"] == {"ratings": ana["t1-s0"][0], "real": real} and data["session"]
    ben = answers_file(tmp_path / "ben.json", {"t1-s0": {"ratings": {real: 4, rnn: 1}, "real": real},
                                               "t1-s1": {"ratings": {real: 5, rnn: 2, ngram: 2}, "real": real}},
                       "Ben", "s-ben", page=page_id)
    foreign = answers_file(tmp_path / "foreign.json", {"t1-s0": {"ratings": {real: 1}}}, "Eve", "s-eve")
    (tmp_path / "broken.json").write_text('{"format": "musicrnn-listening-answers", "version": 1,')
    res = CliRunner().invoke(main, ["tally", str(folder), str(exported), str(ben), str(foreign),
                                    str(tmp_path / "broken.json"), "--resamples", "2000"])
    assert res.exit_code == 0, res.output
    skipped = [line for line in res.output.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2 and "foreign.json: answers another page" in skipped[0] and "broken.json: not JSON" \
        in skipped[1]
    assert res.output.strip().splitlines()[-1].startswith("tallied 2 listeners (2 files skipped) -> ")
    m = pd.read_csv(folder / "tally" / "models.csv").set_index("column")
    assert m.loc[real, "model"] == "real continuation" and m.loc[rnn, "model"] == "rnn"
    assert m.loc[[real, rnn, ngram], "mean"].tolist() == pytest.approx([4.5, 2.25, 2.0])
    assert m.loc[[real, rnn, ngram], "picked"].tolist() == [3, 1, 0]
    assert m.loc[real, "p_value"] == pytest.approx(1 / 9)
    pref = pd.read_csv(folder / "tally" / "preference.csv").set_index(["a", "b"])
    assert pref.loc[(real, rnn), "share"] == pytest.approx(3 / 4)
    assert pref.loc[(rnn, ngram), "share"] == pytest.approx(1 / 3)
