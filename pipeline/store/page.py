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

import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.core.errors import AnswersError, PageError
from pipeline.core.fsutil import atomic_write_json, stable_id

COLLAPSE_RUN = 8      # a token repeated this many times back to back is the "same note forever" collapse
COPY_FLAG = 0.5       # share of the sample's 8-grams found in training above which it reads as memorised

#: metric key -> (label on the page, format)
SHOWN = {
    "pitch_range": ("pitch range", "{:.0f}"),
    "n_pitch_classes_used": ("pitch classes", "{:.0f}"),
    "pitch_class_histogram_distance": ("PC-hist. dist.", "{:.2f}"),
    "interval_distribution_distance": ("interval dist.", "{:.2f}"),
    "scale_consistency": ("scale consist.", "{:.2f}"),
    "longest_repeat_run": ("longest run", "{:.0f}"),
    "repetition_rate": ("repetition", "{:.2f}"),
    "ngram_copy_rate": ("8-gram copy", "{:.2f}"),
    "pitch_entropy": ("pitch entropy", "{:.2f}"),
    "polyphony": ("polyphony", "{:.2f}"),
    "polyphony_rate": ("polyphony rate", "{:.2f}"),
    "empty_beat_rate": ("empty beats", "{:.2f}"),
    "groove_consistency": ("groove consist.", "{:.2f}"),
    "pulse_share": ("pulse", "{:.2f}"),          # share of onset gaps equal to the commonest one
    "onset_gap_histogram_distance": ("onset-gap dist.", "{:.2f}"),
    "duration_histogram_distance": ("duration dist.", "{:.2f}"),
    "token_error_rate": ("token errors", "{:.3f}"),   # timed encodings only
}

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


# ------------------------------------------------------------------------ the page itself (index.html)

def copy_media(files: dict, assets: Path, stem: str) -> dict:
    """Copies of a cell's files (``assets/...`` paths) named ``<stem>.<ext>``; returns the new paths."""
    out = {}
    for kind, rel in files.items():
        src = assets / Path(rel).name
        dst = assets / (stem + src.suffix)
        shutil.copyfile(src, dst)
        out[kind] = f"assets/{dst.name}"
    return out


def _rhythm_note(info: dict) -> str:
    if info.get("timed"):
        return (f"The {html.escape(info['encoding'])} tokens carry their rhythm: every sample plays the timing its "
                f"model wrote, and the real continuation ({info['real_tokens']} tokens) is its tokens decoded the "
                "same way. Repetition, runs and copying count onsets (the notes that start together), not tokens.")
    return (f"Sample #k of every column has the same rhythm (drawn from the corpus), so they differ in pitch only; "
            f"the real continuation ({info['real_tokens']} tokens) keeps its own timing.")


def _listening_note(ask_real: bool) -> str:
    real = (" One column is the real continuation of the piece; in every row, pick the one you think it is."
            if ask_real else "")
    return (f"<p>Listening test: rate every sample 1 (poor) to 5 (excellent).{real} Your answers stay in this "
            "browser (a reload loses nothing); when you are done, give your name and download your answers, "
            f"and send the file to whoever made this page.</p>{listener_panel()}")


def _fmt(key: str, v) -> str:
    return "–" if v is None or pd.isna(v) else SHOWN[key][1].format(v)


def _media(files: dict, alt: str) -> str:
    return (f'<audio controls preload="metadata" src="{html.escape(files["audio"])}"></audio>'
            f'<a href="{html.escape(files["roll"])}"><img src="{html.escape(files["roll"])}" alt="{html.escape(alt)}" '
            f'width="1200" height="400"></a><a class="dl" href="{html.escape(files["midi"])}">MIDI</a>')


def _cell(cell: dict, alt: str, show_metrics: bool) -> str:
    out = _media(cell["files"], alt)
    if show_metrics:
        out += "".join(f'<span class="flag">{html.escape(f)}</span>' for f in cell["flags"])
        out += '<div class="m">' + "".join(
            f"<span>{label}</span><b>{_fmt(k, cell['metrics'].get(k))}</b>" for k, (label, _) in SHOWN.items()
            if k in cell["metrics"])
        out += "</div>"
    return out


def _column_label(col: dict, blind: bool) -> str:
    if blind:
        return f"Model {col['letter']}"
    if col["cell"] == "ngram":
        loss = col.get("ngram_val_loss")
        parts = [f"Witten-Bell, on the {col['sequences']} training sequences"
                 + (f" (±{col['transpose']} semitones)" if col.get("transpose") else ""),
                 f"order chosen by val loss {loss:.3f}" if loss == loss and loss is not None else "order given"]
        return (f"{col['letter']} · n-gram sampler ({col['order']}-gram)<br><small>"
                + "<br>".join(html.escape(p) for p in parts) + "</small>")
    size = f"{col['layers']}×{col['hidden']}"
    parts = [f"{col['cell'].upper()} {size}", f"{col['parameters']:,} params" if col.get("parameters") else ""]
    if "val_loss" in col:
        parts.append(f"val loss {col['val_loss']:.3f} · acc {col['val_acc']:.3f} "
                     f"(epoch {col['best_epoch']}/{col['epochs']})")
    return (f"{col['letter']} · {html.escape(col['name'])}<br><small>"
            + "<br>".join(html.escape(p) for p in parts if p) + "</small>")


def page_html(columns: list[dict], config, info: dict, opening: dict, real: dict | None,
              cells: dict, summary: pd.DataFrame, page: str = "") -> str:
    """The whole page as one string: inline CSS, relative links; a blind page's script keeps the answers.

    ``config`` is the compare stage's CompareConfig (blind, temperatures, count, length, seed), read
    by attribute: the page's owner does not import the stage that builds it.

    In blind mode the real continuation is one of ``columns`` (cell ``real``) with a
    cell in every row, and every cell gets the answer controls of :mod:`pipeline.store.page`.
    """
    blind, n_rows = config.blind, len(config.temperatures) * (config.count + 1)
    e = html.escape
    ask_real = any(c["cell"] == REAL for c in columns)
    head = "".join(f"<th>{_column_label(c, blind)}</th>" for c in columns)
    if not blind:
        head += f"<th>Real continuation<br><small>{e(info['piece'])}</small></th>"
    body = []
    for k, t in enumerate(config.temperatures):
        ref = ""
        if k == 0 and not blind:
            inner = _cell(real, "real continuation", not blind) if real else "<p>the piece ends within the primer</p>"
            ref = f'<td class="ref" rowspan="{n_rows}"><div>{inner}</div></td>'
        body.append(f'<tr class="t"><th colspan="{len(columns) + 1}">temperature {t:g}</th>{ref}</tr>')
        for i in range(config.count):
            tds = []
            for c in columns:
                cell = cells[c["letter"], t, i]
                css = "" if blind else " ".join(f.split()[0] for f in cell["flags"])  # collapse, copies
                alt = f"sample {c['letter']} T={t:g}"
                controls = answer_controls(row_id(t, i), c["letter"], ask_real) if blind else ""
                tds.append(f'<td class="{css}">{_cell(cell, alt, not blind)}{controls}</td>')
            body.append(f'<tr data-row="{row_id(t, i)}"><th>T={t:g}<br>#{i + 1}</th>{"".join(tds)}</tr>')
    if blind:
        tail = ("<p>Blind test: columns are shuffled and the metrics hidden. "
                "Whoever made it holds the key (letter → run, with the metrics); it is not in this page.</p>"
                + answers_script(page))
    else:
        names = {c["letter"]: f"{c['letter']} · {c['name']}" for c in columns}
        keys = [k for k in SHOWN if k in summary]
        srows = "".join(
            f"<tr{' class=real' if r['column'] == 'real' else ''}><td>"
            f"{e(names.get(r['column'], 'real continuation'))}</td><td>"
            f"{'–' if pd.isna(r['temperature']) else format(r['temperature'], 'g')}</td><td>{r['samples']}</td>"
            f"<td>{r['collapse']}</td><td>{r['copies']}</td>" + "".join(f"<td>{_fmt(k, r[k])}</td>" for k in keys)
            + "</tr>" for r in summary.to_dict("records"))
        tail = ("<h2>Summary: means over samples</h2><table class=summary><tr><th>model</th><th>T</th><th>n</th>"
                "<th>collapse</th><th>copies</th>" + "".join(f"<th>{SHOWN[k][0]}</th>" for k in keys)
                + f"</tr>{srows}</table>")
    title = "Blind listening test" if blind else "Models side by side"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{font: 14px/1.4 system-ui, sans-serif; margin: 1em; color: #222}}
table.grid {{border-collapse: collapse; table-layout: fixed}}
.grid > tbody > tr > td, .grid > tbody > tr > th {{border: 1px solid #ccc; padding: 6px; vertical-align: top;
  width: 320px}}
.grid > tbody > tr > th:first-child {{width: 60px}}
.grid tr.t th {{background: #eef; text-align: left}}
.grid img {{width: 100%; height: auto; display: block; margin: 4px 0}}
audio {{width: 100%}}
td.ref {{background: #f4fbf4}} td.ref > div {{position: sticky; top: 0}}
td.collapse {{background: #fde8e8}} td.copies {{background: #fff3d6}}
.flag {{display: inline-block; background: #c0392b; color: #fff; border-radius: 3px; padding: 0 5px; margin: 2px}}
.m {{display: grid; grid-template-columns: 1fr auto 1fr auto; gap: 1px 8px; font-size: 12px}}
.m span {{color: #555}} .m b {{text-align: right; font-weight: 600}} a.dl {{font-size: 12px}}
table.summary {{border-collapse: collapse}} .summary td, .summary th {{border: 1px solid #ccc; padding: 3px 8px}}
.summary tr.real {{background: #f4fbf4}} .summary td {{text-align: right}} .summary td:first-child {{text-align: left}}
{ANSWERS_CSS if blind else ""}
</style></head><body>
<h1>{title}</h1>
<p>Every model continues the opening of the held-out piece <b>{e(info['piece'])}</b> ({info['n_primer']}
{e(info['encoding'])} tokens) with {config.length} new tokens; samples per temperature: {config.count}; seed
{config.seed}. {_rhythm_note(info)}
Flags: <span class="flag">collapse</span> a token repeated {COLLAPSE_RUN}+ times in a row or one pitch only;
<span class="flag">copies training</span> {COPY_FLAG:.0%}+ of its 8-grams occur in the training pieces.</p>
<h2>The opening every model continues</h2>
<div class="primer" style="width:560px">{_media(opening['files'], 'primer')}</div>
<h2>Samples</h2>
{_listening_note(ask_real) if blind else ""}
<table class="grid"><tr><th></th>{head}</tr>
{''.join(body)}
</table>
{tail}
</body></html>
"""
