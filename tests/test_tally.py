"""The listening test: its statistics, the answer files, `tally`, and the blind page answered in Chromium."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.core.errors import AnswersError, NoUsableInputError, PageError
from pipeline.measures.listening import (binomial_tail, bootstrap_mean_ci, pairwise_preference, picked_as_real,
                                         rating_summary)
from pipeline.stages.tally import TallyConfig, tally
from pipeline.store.page import (ANSWERS_KIND, ANSWERS_VERSION, ListeningPage, parse_answers, read_listening_page,
                                 write_page_record)


def exact_tail(k: int, n: int, p: Fraction) -> float:
    return float(sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1)))


# ------------------------------------------------------------------ statistics

def test_binomial_tail_matches_known_and_exact_values():
    assert binomial_tail(8, 10, 0.5) == pytest.approx(56 / 1024, rel=1e-12)
    assert binomial_tail(3, 4, 1 / 3) == pytest.approx(1 / 9, rel=1e-12)
    for k, n, p in [(7, 20, Fraction(1, 4)), (12, 30, Fraction(1, 3)), (1, 5, Fraction(1, 2))]:
        assert binomial_tail(k, n, float(p)) == pytest.approx(exact_tail(k, n, p), rel=1e-10)
    assert binomial_tail(0, 5, 0.2) == 1.0 and binomial_tail(6, 5, 0.2) == 0.0 and binomial_tail(0, 0, 0.5) == 1.0
    # BachBot's scale: 2,336 listeners, 1% above chance (51% of 2,336 right where half is chance)
    assert 0.15 < binomial_tail(round(0.51 * 2336), 2336, 0.5) < 0.2
    with pytest.raises(ValueError):
        binomial_tail(1, 2, 1.0)


def test_bootstrap_interval_holds_the_mean_and_is_repeatable():
    values = [1, 2, 2, 3, 4, 4, 4, 5, 5, 3]
    mean, low, high = bootstrap_mean_ci(values, resamples=2000, seed=7)
    assert mean == pytest.approx(3.3) and 1 <= low < mean < high <= 5
    assert bootstrap_mean_ci(values, resamples=2000, seed=7) == (mean, low, high)
    wider = bootstrap_mean_ci(values, confidence=0.99, resamples=2000, seed=7)
    assert wider[1] <= low and wider[2] >= high
    assert bootstrap_mean_ci([4]) == (4.0, 4.0, 4.0)
    assert all(math.isnan(v) for v in bootstrap_mean_ci([]))


def test_preference_and_picks_count_listeners_times_rows():
    ratings = pd.DataFrame([("ana", "r0", "A", 5), ("ana", "r0", "B", 2), ("ana", "r1", "A", 3), ("ana", "r1", "B", 3),
                            ("ben", "r0", "A", 1), ("ben", "r0", "B", 4), ("ben", "r1", "A", 2)],
                           columns=["listener", "row", "column", "rating"])
    pref = pairwise_preference(ratings, ["A", "B", "C"]).set_index(["a", "b"])
    assert pref.loc[("A", "B")].tolist()[:3] == [3, 1, 1] and pref.loc[("A", "B"), "share"] == pytest.approx(1 / 3)
    assert pref.loc[("B", "A"), "above"] == 1 and pref.loc[("A", "C"), "pairs"] == 0
    assert math.isnan(pref.loc[("A", "C"), "share"])
    scores = rating_summary(ratings, ["A", "B", "C"], resamples=500).set_index("column")
    assert scores.loc["A", "ratings"] == 4 and scores.loc["A", "mean"] == pytest.approx(2.75)
    assert scores.loc["C", "ratings"] == 0 and math.isnan(scores.loc["C", "mean"])
    choices = pd.DataFrame([("ana", "r0", "A"), ("ana", "r1", "A"), ("ben", "r0", "B")],
                           columns=["listener", "row", "choice"])
    picks = picked_as_real(choices, ["A", "B", "C"]).set_index("column")
    assert picks.loc["A", "picked"] == 2 and picks.loc["A", "answered"] == 3
    assert picks.loc["A", "p_value"] == pytest.approx(exact_tail(2, 3, Fraction(1, 3)))
    assert picked_as_real(choices.iloc[:0], ["A", "B"])["p_value"].isna().all()


# ------------------------------------------------------------------ answer files and tally, on a page built in code

PAGE_ID = "0123456789ab"
KEY = {"A": {"letter": "A", "cell": "gru", "name": "gru-1x8", "run": "runs/gru"},
       "B": {"letter": "B", "cell": "real", "name": "real continuation", "run": ""},
       "C": {"letter": "C", "cell": "ngram", "name": "3-gram", "run": ""}}


def answers_file(path: Path, answers: dict, listener: str = "", session: str = "", page: str = PAGE_ID,
                 saved: str = "2025-01-01T10:00:00.000Z") -> Path:
    """An answer file as the page exports it."""
    path.write_text(json.dumps({"format": ANSWERS_KIND, "version": ANSWERS_VERSION, "page": page,
                                "listener": listener, "session": session, "saved": saved, "answers": answers}))
    return path


@pytest.fixture
def page(tmp_path) -> Path:
    """A blind page's record and key (no media): two rows, columns A (gru), B (real), C (3-gram)."""
    folder = tmp_path / "page"
    folder.mkdir()
    write_page_record(folder, {"blind": True, "page_id": PAGE_ID, "temperatures": [1.0], "count": 2}, KEY)
    return folder


def test_the_page_record_reads_back(page):
    p = read_listening_page(page)
    assert p.page_id == PAGE_ID and p.letters == ("A", "B", "C") and p.rows == ("t1-s0", "t1-s1") and p.real == "B"
    record = json.loads((page / "compare.json").read_text())
    write_page_record(page, {**record, "blind": False})
    with pytest.raises(PageError, match="not a listening test"):
        read_listening_page(page)
    write_page_record(page, {k: v for k, v in record.items() if k != "page_id"})
    with pytest.raises(PageError, match="build it again"):
        read_listening_page(page)
    with pytest.raises(PageError, match="not a comparison page"):
        read_listening_page(page / "assets")


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not JSON"),
    (json.dumps([1, 2]), "not a musicrnn"),
    (json.dumps({"format": "other"}), "not a musicrnn"),
    (json.dumps({"format": ANSWERS_KIND, "version": 99, "page": PAGE_ID, "answers": {}}), "version 99"),
    (json.dumps({"format": ANSWERS_KIND, "version": 1, "page": "ffffffffffff", "answers": {}}), "another page"),
    (json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID, "answers": []}), "not an object"),
    (json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID, "answers": {"t9-s0": {}}}), "no row"),
    (json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID,
                 "answers": {"t1-s0": {"ratings": {"A": 7}}}}), "1-5"),
    (json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID,
                 "answers": {"t1-s0": {"ratings": {"A": True}}}}), "1-5"),
    (json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID,
                 "answers": {"t1-s0": {"ratings": {"Z": 3}}}}), "column 'Z'"),
    (json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID,
                 "answers": {"t1-s0": {"ratings": {}, "real": "Q"}}}), "real continuation"),
    (json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID, "answers": {}}), "no answers"),
])
def test_bad_answer_files_say_why(page, content, reason):
    with pytest.raises(AnswersError, match=reason):
        parse_answers(content, read_listening_page(page))


def test_answers_parse(page):
    a = parse_answers(json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID, "listener": "Ana",
                                  "answers": {"t1-s1": {"ratings": {"A": 2, "C": 5}, "real": "C"}}}),
                      read_listening_page(page))
    assert a.listener == "Ana" and a.ratings == [("t1-s1", "A", 2), ("t1-s1", "C", 5)] and a.choices == [("t1-s1", "C")]
    no_real = ListeningPage(page, PAGE_ID, ("A", "C"), ("t1-s0",), None)
    with pytest.raises(AnswersError, match="real continuation"):
        parse_answers(json.dumps({"format": ANSWERS_KIND, "version": 1, "page": PAGE_ID,
                                  "answers": {"t1-s0": {"ratings": {"A": 2}, "real": "A"}}}), no_real)


def test_tally_sums_up_skips_bad_files_and_keeps_the_later_export(page, tmp_path):
    ana_old = answers_file(tmp_path / "ana-old.json", {"t1-s0": {"ratings": {"A": 1}}}, "Ana", "s-ana")
    ana = answers_file(tmp_path / "ana.json", {"t1-s0": {"ratings": {"A": 2, "B": 5, "C": 3}, "real": "B"},
                                               "t1-s1": {"ratings": {"A": 4, "B": 4, "C": 1}, "real": "A"}},
                       "Ana", "s-ana", saved="2025-01-01T11:00:00.000Z")
    ben = answers_file(tmp_path / "ben.json", {"t1-s0": {"ratings": {"A": 1, "B": 4}, "real": "B"},
                                               "t1-s1": {"ratings": {"A": 2, "B": 5, "C": 2}, "real": "B"}},
                       "", "s-ben")
    foreign = answers_file(tmp_path / "foreign.json", {"t1-s0": {"ratings": {"A": 1}}}, page="ffffffffffff")
    lines = []
    res = tally(page, [ana_old, ana, ben, foreign, tmp_path / "missing.json", ben], TallyConfig(resamples=2000),
                notice=lines.append)
    assert res.listeners == ["Ana", "ben"]  # a listener without a name is named after the file
    assert [Path(f).name for f, _ in res.skipped] == ["ana-old.json", "foreign.json", "missing.json", "ben.json"]
    assert len(lines) == 4 and all(line.startswith("skipped ") for line in lines)
    assert f"same listener's answers (one browser) as {ana}" in lines[0] and "another page" in lines[1]
    assert "cannot be read" in lines[2] and "named twice" in lines[3]
    m = res.models.set_index("column")
    assert m.loc["B", "model"] == "real continuation" and m.loc["A", "model"] == "gru-1x8"
    assert m["ratings"].tolist() == [4, 4, 3]
    assert m["mean"].tolist() == pytest.approx([2.25, 4.5, 2.0])
    assert (m["ci_low"] <= m["mean"]).all() and (m["mean"] <= m["ci_high"]).all()
    assert m["picked"].tolist() == [1, 3, 0] and (m["answered"] == 4).all()
    assert m.loc["B", "p_value"] == pytest.approx(1 / 9)  # 3 of 4 right, chance 1/3
    pref = res.preference.set_index(["a", "b"])
    assert pref.loc[("B", "A"), ["pairs", "above", "ties"]].tolist() == [4, 3, 1]
    assert pref.loc[("A", "C"), "share"] == pytest.approx(1 / 3)
    out = page / "tally"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "models.csv", "preference.csv", "tally.json", "tally.png"]
    saved = json.loads((out / "tally.json").read_text())
    assert TallyConfig.from_dict(saved) == TallyConfig(resamples=2000) and saved["page_id"] == PAGE_ID
    assert pd.read_csv(out / "models.csv")["mean"].tolist() == pytest.approx([2.25, 4.5, 2.0])
    assert (out / "tally.png").stat().st_size > 10_000
    with pytest.raises(NoUsableInputError, match="none of the 1"):
        tally(page, [foreign])


def test_tally_never_replaces_a_folder_of_the_users(page, tmp_path):
    mine = page / "tally"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    res = CliRunner().invoke(main, ["tally", str(page), str(answers_file(tmp_path / "a.json",
                                                                          {"t1-s0": {"ratings": {"A": 3}}}))])
    assert res.exit_code == 1 and "not written by this tool" in res.output and "Traceback" not in res.output
    assert (mine / "notes.txt").read_text() == "mine"


def test_tally_command_prints_a_table_and_one_final_line(page, tmp_path):
    good = answers_file(tmp_path / "a.json", {"t1-s0": {"ratings": {"A": 3, "B": 5}, "real": "B"}}, "Ana", "s1")
    (tmp_path / "bad.json").write_text("{")
    res = CliRunner().invoke(main, ["tally", str(page), str(good), str(tmp_path / "bad.json")])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert sum(line.startswith("skipped ") for line in lines) == 1 and f"skipped {tmp_path / 'bad.json'}: not JSON" \
        in res.output
    assert "real continuation" in res.output and "gru-1x8" in res.output and "preference" in res.output
    assert lines[-1] == (f"tallied 1 listener (1 file skipped) -> {page / 'tally'}/ "
                         "(tally.json, models.csv, preference.csv, tally.png)")
    res = CliRunner().invoke(main, ["tally", str(tmp_path), str(good)])
    assert res.exit_code == 1 and "not a comparison page" in res.output
    assert "Example" in CliRunner().invoke(main, ["tally", "--help"]).output


# ------------------------------------------------------------------ the real page, answered in Chromium

@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_blind_page_records_answers_that_tally_unblinds(tmp_path):
    """Build a blind page, answer it in headless Chromium, reload, export, and tally the export."""
    from playwright.sync_api import sync_playwright

    from test_compare import CHROMIUM, CHROMIUM_ARGS, TINY, tiny_run, tiny_set
    from pipeline.stages.compare import compare

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
