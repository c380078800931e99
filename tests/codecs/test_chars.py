"""codecs/chars.py: ABC text <-> framed characters."""
from __future__ import annotations

import pytest

from pipeline.codecs import END, START
from pipeline.codecs import chars as encodings

SCALE = "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|"


@pytest.mark.parametrize("text", [SCALE, "T:a <b> c\nK:C\n<start>x<end>|", "", "é\t\n<"])
def test_chars_round_trip(text):
    tokens = encodings.encode_chars(text)
    assert tokens[0] == START and tokens[-1] == END and len(tokens) == len(text) + 2
    assert encodings.decode_chars(tokens) == text
    assert encodings.decode_chars(tokens + list("ignored after the end")) == text


def test_split_generated():
    a, b = "X:1\nK:C\nCDE|", "X:2\n<b>"
    assert encodings.split_generated(encodings.encode_chars(a) + encodings.encode_chars(b)) == [a, b]
    # an empty tune, then one cut off by the length limit
    assert encodings.split_generated([START, END, START, *"X:3"]) == ["", "X:3"]
    # a sample continued from a text primer starts without START; blank gaps are not tunes
    assert encodings.split_generated([*"K:C\nC", END, "\n", START, "D", END]) == ["K:C\nC", "D"]
    assert encodings.split_generated([]) == []
