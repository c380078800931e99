"""measures/abc_eval.py: the validity of generated tunes."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from pipeline.measures import abc_eval
from pipeline.measures.abc_eval import SUMMARY_COLUMNS, VALIDITY_COLUMNS, summarise_validity, validate_tunes

SCALE = "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|"

BROKEN = "X:7\nT:Broken\nM:4/4\nL:1/4\nK:C\nC[EG|F"  # a chord that never closes


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


def test_check_tune_good():
    v = abc_eval.check_tune(SCALE)
    assert v.parses and v.to_midi and v.error is None
    assert (v.bars_total, v.bars_matching, v.meter, v.notes) == (2, 2, "4/4", 8)
    # an anacrusis completed by the last bar, and a bar split by a repeat sign
    pickup = abc_eval.check_tune("X:1\nT:P\nM:3/4\nL:1/8\nK:G\nD|G2 B2 d2|c4 z:|:A|G4 z|")
    assert pickup.parses and pickup.bars_total == 5 and pickup.bars_matching == 5


def test_check_tune_wrong_bar_lengths():
    short = abc_eval.check_tune("X:1\nT:Short\nM:4/4\nL:1/4\nK:C\nCDEF|GAB|cdef|gfed|")
    assert short.parses and short.to_midi
    assert (short.bars_total, short.bars_matching) == (4, 3)
    # music21 would re-bar an overlong bar into two "correct" ones; it must still count as wrong
    long = abc_eval.check_tune("X:1\nT:Long\nM:4/4\nL:1/4\nK:C\nCDEF|GABcd|cdef|")
    assert (long.bars_total, long.bars_matching) == (3, 2)
    # no meter: nothing to compare bars with
    free = abc_eval.check_tune("X:1\nT:Free\nM:none\nL:1/4\nK:C\nCDEF|GAB|")
    assert free.parses and free.meter == "none" and free.bars_matching == 0


@pytest.mark.parametrize("garbage", [
    "this is not ABC ][", "", "X:1\nK:C\n", "X:1\nL:1/0\nK:C\nC", "\x00\x01|:", "/etc/passwd",
    "X:1\nT:no key\nM:4/4\nL:1/4\nCDEF|",
])
def test_check_tune_garbage_never_raises(garbage):
    v = abc_eval.check_tune(garbage)
    assert not v.parses and not v.to_midi and v.error


def test_check_tune_gives_up_on_absurd_meter():
    v = abc_eval.check_tune("X:1\nM:451/8\nL:1/8\nK:C\nC8|", timeout_s=0.5)
    assert not v.parses and "gave up" in v.error
