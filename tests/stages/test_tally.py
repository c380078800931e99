"""The tally stage: answer files of a listening page summed up."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.core.errors import NoUsableInputError
from pipeline.stages.tally import TallyConfig, tally

# ------------------------------------------------------------------ tally, on a page built in code (the page fixture)

PAGE_ID = "0123456789ab"  # the page fixture's id (conftest.py)


def test_tally_sums_up_skips_bad_files_and_keeps_the_later_export(answers_file, page, tmp_path):
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


def test_tally_never_replaces_a_folder_of_the_users(answers_file, page, tmp_path):
    mine = page / "tally"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    res = CliRunner().invoke(main, ["tally", str(page), str(answers_file(tmp_path / "a.json",
                                                                          {"t1-s0": {"ratings": {"A": 3}}}))])
    assert res.exit_code == 1 and "not written by this tool" in res.output and "Traceback" not in res.output
    assert (mine / "notes.txt").read_text() == "mine"


def test_tally_command_prints_a_table_and_one_final_line(answers_file, page, tmp_path):
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
