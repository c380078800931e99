"""``chars``: ABC text character by character, each tune framed by ``<start>`` … ``<end>``.

The two markers are single tokens, never characters of a tune. Tunes are read
by :mod:`pipeline.inputs.abc_io`; :func:`split_generated` cuts a sampled stream
back into tunes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from pipeline.codecs.base import END, START, Codec, tokens_seen
from pipeline.inputs.abc_io import music_primer, read_abc_text, split_tunebook


def encode_chars(tune_text: str) -> list[str]:
    """``[START, c1, c2, ..., cn, END]``: one token per character of the tune text.

    The markers are single tokens, so a tune that contains the text ``<start>``
    still encodes to its seven characters and decodes back unchanged.
    """
    return [START, *tune_text, END]


def decode_chars(tokens: list[str]) -> str:
    """Inverse of :func:`encode_chars`: the text up to the first END, markers removed."""
    out = []
    for tok in tokens:
        if tok == END:
            break
        if tok != START:
            out.append(tok)
    return "".join(out)


def split_generated(tokens: list[str]) -> list[str]:
    """Cut a sampled token stream holding several ``START ... END`` tunes into tune texts.

    Each ``START ... END`` pair gives one text (``''`` for ``START END``), and a
    tune cut off by the length limit (a START with no END) is kept as it is.
    Text outside any pair, such as a sample continued from a text primer, is a
    tune too unless it is blank. So ``split_generated(encode_chars(a) +
    encode_chars(b)) == [a, b]``.
    """
    tunes: list[str] = []
    current: list[str] = []
    inside = False  # between a START and its END

    def flush() -> None:
        text = "".join(current)
        if inside or text.strip():
            tunes.append(text)

    for tok in tokens:
        if tok == START or tok == END:
            flush()
            current, inside = [], tok == START
        else:
            current.append(tok)
    flush()
    return tunes


CHAR_FEATURES = ("in_header", "in_title", "marker", "bar_line", "space", "newline", "digit", "upper_case",
                 "colon", "in_quotes", "in_chord", "line_position")
_HEADER_LINE = re.compile(r"^([A-Za-z]:|%)")


def _char_features(tokens: Sequence[str]) -> dict[str, np.ndarray]:
    n = len(tokens)
    f = {name: np.zeros(n) for name in CHAR_FEATURES}
    # split into lines: a line ends with its newline (included) or at a marker
    lines, cur = [], []
    for i, t in enumerate(tokens):
        if t in (START, END):
            if cur:
                lines.append(cur)
            lines.append([i])
            cur = []
            continue
        cur.append(i)
        if t == "\n":
            lines.append(cur)
            cur = []
    if cur:
        lines.append(cur)
    header = True  # a sequence (or a tune after <start>) opens with its header
    for line in lines:
        first = tokens[line[0]]
        if first in (START, END):
            f["marker"][line[0]] = 1
            header = first == START
            continue
        text = "".join(tokens[i] for i in line).rstrip("\n")
        if header and _HEADER_LINE.match(text):
            f["in_header"][line] = 1
            if text.startswith("T:"):
                f["in_title"][line] = 1
            header = not text.startswith("K:")  # the header ends after the key line
        else:
            header = False
        quote = chord = False
        for col, i in enumerate(line):
            t = tokens[i]
            f["line_position"][i] = col
            f["bar_line"][i] = t == "|"
            f["space"][i] = t == " "
            f["newline"][i] = t == "\n"
            f["digit"][i] = t.isdigit()
            f["upper_case"][i] = t.isupper()
            f["colon"][i] = t == ":"
            # delimiters count as inside; an unclosed quote or bracket ends with its line
            opening = t == '"' and not quote
            f["in_quotes"][i] = quote or t == '"'
            quote = opening or (quote and t != '"')
            if not quote and t == "[":
                chord = True
            f["in_chord"][i] = chord
            if t == "]":
                chord = False
    return f


def encode_abc(text: str) -> list[str]:
    """ABC text -> chars tokens: each tune of a tunebook framed as in ``extract``; text with no X: line as one."""
    tunes = split_tunebook(text)
    return [t for tune in tunes for t in encode_chars(tune.text)] if tunes else encode_chars(text)


class CharsCodec(Codec):
    name = "chars"
    plays_notes = False
    reads_text = True
    transposable = False
    default_length = 1000  # a whole tune
    text_layout = True     # heatmaps lay the tokens out as the text they spell
    default_primer = "start"
    # O'Neill's 1850 as music text (R: M: L: K: and notes, 405,000 training characters) under a 10-minute
    # budget on 2 cores (docs/bench/abc.md): more updates (16 streams x 50 characters a step) beat a
    # larger batch or longer chunks, GRU 2x256 a third layer or LSTM, and a rate decaying x0.8 an epoch
    # the faster x0.6 (92% of sampled tunes parse, 84% of their bars fit the meter); a plain stack beat a
    # residual one (full-context loss 1.16 against 1.19, bars fitting the meter 84% against 74%)
    train_defaults: dict[str, Any] = {"hidden": 256, "embed": 32, "dropout": 0.1, "lr": 0.003, "lr_decay": 0.8,
                                      "batch": 16, "window": 50, "stack": "plain"}

    def encode_text(self, text: str) -> list[str]:
        return encode_chars(text)

    def vocabulary(self, sequences: Iterable[Sequence[str]]) -> list[str]:
        return sorted(tokens_seen(sequences), key=lambda t: (len(t) > 1, t))  # markers after single characters

    def read_file(self, path: Path) -> list[str]:
        if path.suffix.lower() != ".abc":
            raise ValueError(f"this is a chars model: give an .abc file, not {path.name}")
        return encode_abc(read_abc_text(path))

    def parse_text(self, text: str) -> list[str]:
        return encode_abc(text)

    def primer_tokens(self, text: str, *, music_text: bool = False) -> list[str]:
        """ABC text after ``<start>`` (``\\n`` typed for a newline); with ``music_text`` written as the
        model reads tunes (R: M: L: K: and notes, :func:`pipeline.inputs.abc_io.music_primer`)."""
        text = text.replace("\\n", "\n")  # a newline is awkward to type in a shell
        if music_text and text:
            text = music_primer(text)
        return [START, *text]

    def features(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        """``in_header`` lines like ``T:``/``M:``/``K:`` (``^[A-Za-z]:`` or ``%``) from the
        start of a tune up to and including the ``K:`` line; ``in_title`` the ``T:``
        line(s) of the header; ``marker`` ``<start>``/``<end>``; ``bar_line`` ``|``;
        ``space``; ``newline``; ``digit``; ``upper_case``; ``colon``; ``in_quotes``
        a ``"..."`` chord symbol or annotation, ``in_chord`` a ``[...]`` chord or inline
        field (delimiters included, both end with their line); ``line_position`` the
        column within the line (continuous)."""
        return _char_features(tokens)
