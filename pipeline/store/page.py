"""Owner of a comparison page folder (``runs/compare-<id>/``) and of its listeners' answer files.

Written by the compare stage, read by tally::

    <page>/compare.json   the CompareConfig, the runs, piece and primer, and ``page_id``
    <page>/key.json       blind pages only: letter -> what the column is (a run, the n-gram
                          sampler, or the real continuation), with its metrics

A blind page is a listening test: every row (one temperature, one sample number)
asks for a 1-5 rating of each column and "which one is the real continuation?".
The page keeps the answers in the browser's localStorage under
``musicrnn-answers:<page_id>`` and exports them, one file per listener, as::

    {"format": "musicrnn-listening-answers", "version": 1,
     "page": "<page_id>", "listener": "Ana", "session": "<id of the browser's copy>",
     "saved": "2025-01-31T12:00:00.000Z",
     "answers": {"t1-s0": {"ratings": {"A": 4, "B": 2, "C": 5}, "real": "C"}, ...}}

Both sides of that format live here: :func:`answer_controls`, :func:`listener_panel`
and :func:`answers_script` write it (HTML and the page's plain JavaScript),
:func:`parse_answers` reads it back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import AnswersError, PageError
from pipeline.core.fsutil import atomic_write_json, stable_id

RECORD = "compare.json"
KEY = "key.json"
ANSWERS_KIND = "musicrnn-listening-answers"
ANSWERS_VERSION = 1
RATINGS = range(1, 6)
REAL = "real"  # the key's ``cell`` of the real continuation's column


def row_id(temperature: float, sample: int) -> str:
    """The id of a page row (one temperature, one sample number), as the answers name it."""
    return f"t{temperature:g}-s{sample}"


def page_id(content: dict) -> str:
    """A page's id: a hash of what it plays (config, runs, columns, tokens), stable across processes.

    The same page built twice gets the same id, so answers to one apply to the other;
    any other page gets another id, and its answers are refused.
    """
    return stable_id(content, length=12)


def write_page_record(folder: Path, record: dict, key: dict | None = None) -> None:
    """``compare.json`` (and ``key.json`` for a blind page) into ``folder``."""
    atomic_write_json(folder / RECORD, record)
    if key is not None:
        atomic_write_json(folder / KEY, key)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PageError(f"{path.parent} has no {path.name}: {what}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PageError(f"{path} cannot be read ({exc}); build the page again") from None
    if not isinstance(data, dict):
        raise PageError(f"{path} is not a JSON object; build the page again")
    return data


def read_page_record(folder: str | Path) -> dict:
    """The content of ``compare.json``."""
    return _read_json(Path(folder) / RECORD, "it is not a comparison page (built by `compare`)")


@dataclass
class ListeningPage:
    """A blind page as tally needs it.

    letters : the columns in page order; rows : the row ids in page order;
    real : the letter of the real continuation (None when the piece ended within the
    primer); columns : letter -> the key's entry (``name``, ``cell``, ``run``...).
    """

    folder: Path
    page_id: str
    letters: tuple[str, ...]
    rows: tuple[str, ...]
    real: str | None
    columns: dict[str, dict] = field(default_factory=dict)


def read_listening_page(folder: str | Path) -> ListeningPage:
    """Read a blind page's record and key; :class:`PageError` for anything else."""
    folder = Path(folder)
    record = read_page_record(folder)
    if not record.get("blind"):
        raise PageError(f"{folder} is not a listening test: build it with `compare --blind`")
    if not record.get("page_id"):
        raise PageError(f"{folder} was built before listening tests recorded answers; "
                        "build it again with `compare --blind`")
    key = _read_json(folder / KEY, "tally needs the key to un-blind the answers")
    rows = tuple(row_id(t, i) for t in record.get("temperatures", []) for i in range(int(record.get("count", 0))))
    real = next((k for k, v in key.items() if v.get("cell") == REAL), None)
    return ListeningPage(folder, record["page_id"], tuple(key), rows, real, key)


# ------------------------------------------------------------------ answers: the writer (HTML + JavaScript)

def answer_controls(row: str, letter: str, ask_real: bool) -> str:
    """The inputs under one cell: a 1-5 rating and, where asked, "this is the real continuation"."""
    name = f"rate:{row}:{letter}"
    stars = "".join(f'<label><input type="radio" name="{name}" value="{v}" data-kind="rating" data-row="{row}" '
                    f'data-col="{letter}">{v}</label>' for v in RATINGS)
    real = (f'<label class="real"><input type="radio" name="real:{row}" value="{letter}" data-kind="real" '
            f'data-row="{row}" data-col="{letter}">the real continuation</label>' if ask_real else "")
    return f'<div class="ans"><span>rating</span>{stars}{real}</div>'


def listener_panel() -> str:
    """The listener's name, the export button and the progress line, shown above the samples."""
    return ('<div class="listen"><label>Your name <input id="listener" placeholder="name or initials"></label> '
            '<button type="button" id="export">Download my answers</button> <span id="progress"></span></div>')


ANSWERS_CSS = """.ans {font-size: 12px; margin-top: 4px} .ans span {color: #555; margin-right: 4px}
.ans label {margin-right: 6px; white-space: nowrap} .ans label.real {display: block}
.listen {position: sticky; top: 0; background: #ffd; padding: 6px; border: 1px solid #cc9; z-index: 1}"""

_SCRIPT = """<script>
(() => {
  const PAGE = %(page)s, KIND = %(kind)s, VERSION = %(version)d, KEY = "musicrnn-answers:" + PAGE;
  let store = null;
  try { store = window.localStorage; store.setItem(KEY + ":probe", "1"); store.removeItem(KEY + ":probe"); }
  catch (e) { store = null; }
  let state = null;
  try { state = JSON.parse(store && store.getItem(KEY)); } catch (e) { state = null; }
  if (!state || typeof state.answers !== "object" || state.answers === null)
    state = {listener: "", session: "", answers: {}};
  if (!state.session) state.session = Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
  const inputs = [...document.querySelectorAll("input[data-row]")];
  const name = document.getElementById("listener"), progress = document.getElementById("progress");
  const count = (kind, pick) => new Set(inputs.filter(i => i.dataset.kind === kind && (!pick || i.checked))
                                          .map(i => i.name)).size;
  function save() {
    if (store) { try { store.setItem(KEY, JSON.stringify(state)); } catch (e) { /* full: the export still works */ } }
    progress.textContent = `${count("rating", true)} of ${count("rating")} ratings, ` +
      (count("real") ? `${count("real", true)} of ${count("real")} real-continuation choices; ` : "") +
      (store ? "kept in this browser" : "this browser cannot keep them: download them before you leave");
  }
  for (const input of inputs) {
    const {kind, row, col} = input.dataset, given = state.answers[row];
    if (given) input.checked = kind === "rating" ? (given.ratings || {})[col] === Number(input.value)
                                                 : given.real === input.value;
    input.addEventListener("change", () => {
      const a = state.answers[row] || (state.answers[row] = {ratings: {}, real: null});
      if (kind === "rating") a.ratings[col] = Number(input.value); else a.real = input.value;
      save();
    });
  }
  name.value = state.listener || "";
  name.addEventListener("input", () => { state.listener = name.value.trim(); save(); });
  document.getElementById("export").addEventListener("click", () => {
    const file = {format: KIND, version: VERSION, page: PAGE, listener: state.listener, session: state.session,
                  saved: new Date().toISOString(), answers: state.answers};
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([JSON.stringify(file, null, 1) + "\\n"], {type: "application/json"}));
    link.download = `answers-${PAGE}-${(state.listener || "").replace(/[^A-Za-z0-9_-]+/g, "_") || "anonymous"}.json`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  });
  save();
})();
</script>"""


def answers_script(page: str) -> str:
    """The page's script: restore, keep (localStorage) and export the answers. No network, works from file://."""
    return _SCRIPT % {"page": json.dumps(page), "kind": json.dumps(ANSWERS_KIND), "version": ANSWERS_VERSION}


# ------------------------------------------------------------------ answers: the reader

@dataclass
class Answers:
    """One listener's answers to one page.

    ratings : (row, letter, rating) for every rating given; choices : (row, letter) for
    every row where the listener said which column is the real continuation.
    """

    listener: str
    session: str
    saved: str
    ratings: list[tuple[str, str, int]]
    choices: list[tuple[str, str]]


def parse_answers(data: bytes | str, page: ListeningPage) -> Answers:
    """Read one answer file's content; :class:`AnswersError` says in one phrase what is wrong with it."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AnswersError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != ANSWERS_KIND:
        raise AnswersError("not a musicrnn listening-test answer file")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AnswersError(f"malformed: version {version!r}")
    if version > ANSWERS_VERSION:
        raise AnswersError(f"answer format version {version}; this musicrnn reads version {ANSWERS_VERSION}")
    if obj.get("page") != page.page_id:
        raise AnswersError(f"answers another page (page id {obj.get('page')!r}; this page is {page.page_id!r})")
    answers, ratings, choices = obj.get("answers"), [], []
    if not isinstance(answers, dict):
        raise AnswersError("malformed: 'answers' is not an object")
    for row, given in answers.items():
        if row not in page.rows:
            raise AnswersError(f"malformed: the page has no row {row!r}")
        if not isinstance(given, dict) or not isinstance(given.get("ratings", {}), dict):
            raise AnswersError(f"malformed: row {row!r} is not an object with a 'ratings' object")
        for letter, value in given.get("ratings", {}).items():
            if letter not in page.letters:
                raise AnswersError(f"malformed: row {row!r} rates a column {letter!r} the page does not have")
            if isinstance(value, bool) or not isinstance(value, int) or value not in RATINGS:
                raise AnswersError(f"malformed: row {row!r} rates {letter} {value!r} (ratings are 1-5)")
            ratings.append((row, letter, value))
        real = given.get("real")
        if real is not None:
            if page.real is None or real not in page.letters:
                raise AnswersError(f"malformed: row {row!r} picks {real!r} as the real continuation")
            choices.append((row, real))
    for name in ("listener", "session", "saved"):
        if not isinstance(obj.get(name, ""), str):
            raise AnswersError(f"malformed: {name!r} is not a string")
    if not ratings and not choices:
        raise AnswersError("holds no answers")
    return Answers(obj.get("listener", ""), obj.get("session", ""), obj.get("saved", ""), ratings, choices)


def read_answers(path: str | Path, page: ListeningPage) -> Answers:
    """:func:`parse_answers` of a file; an unreadable file is an :class:`AnswersError` too."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AnswersError(f"cannot be read ({exc.strerror or exc})") from None
    return parse_answers(data, page)


__all__ = ["ANSWERS_KIND", "ANSWERS_VERSION", "Answers", "ListeningPage", "answer_controls", "answers_script",
           "listener_panel", "page_id", "parse_answers", "read_answers", "read_listening_page", "read_page_record",
           "row_id", "write_page_record"]
