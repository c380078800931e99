"""store/page.py: the record of a listening page and its answer files."""
from __future__ import annotations

import json

import pytest

from pipeline.core.errors import AnswersError, PageError
from pipeline.store.page import ANSWERS_KIND, ListeningPage, parse_answers, read_listening_page, write_page_record

# ------------------------------------------------------------------ the record and answer files of a page built in code (the page fixture)

PAGE_ID = "0123456789ab"  # the page fixture's id (conftest.py)


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
