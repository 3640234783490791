"""The report page's inline CSS and JavaScript (``page.py`` builds the HTML around them).

Both are constants: nothing recorded is ever formatted into them, so the page's one script is
known in advance and the Content-Security-Policy can allow exactly it, by hash.

The script reads the page it is in and nothing else (no network, no storage):

- a click on anything with ``data-offset`` (a bar, a table row, a link) shows that item's log:
  the row's cells become the log view's header and the item's ``<template id="log-N">`` is
  cloned into the panel; the URL fragment becomes ``#item-N``;
- on load and on ``hashchange``, ``#item-N`` opens item N's log through the same function,
  so a link to an item can be pasted into a bug report (and the browser test uses it);
- the status checkboxes and the search box hide table rows and dim timeline bars; the search
  matches an item's log text and its row (input, result, error), case-insensitively;
- a click on a sortable column header sorts the table by it.
"""

from __future__ import annotations

import base64
import hashlib

# One colour per outcome, set as --c on the status class and used by bars, pills and chips.
CSS = """
:root{--bg:#f6f7f9;--card:#fff;--ink:#1c2024;--muted:#60646c;--line:#e0e3e8;--accent:#3e63dd;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1400px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 4px;font-weight:650}
h1 code{font-size:19px}
h2{font-size:16px;margin:0 0 12px;font-weight:650}
h3{font-size:15px;margin:0 0 6px}
code,pre,.mono{font-family:var(--mono);font-size:12.5px}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
.muted{color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
margin:14px 0;box-shadow:0 1px 2px rgba(16,24,40,.04)}
header .meta{color:var(--muted);font-size:13px}
header .meta span+span::before{content:"\\00b7";margin:0 7px;color:#b0b4ba}
.warn{background:#fff8e6;border:1px solid #f3d58a;border-radius:8px;padding:8px 12px;margin:10px 0}
.s-succeeded,[data-status=succeeded]{--c:#30a46c}.s-failed,[data-status=failed]{--c:#e5484d}
.s-crashed,[data-status=crashed]{--c:#8e4ec6}.s-timeout,[data-status=timeout]{--c:#f76b15}
.s-cancelled,[data-status=cancelled]{--c:#8b8d98}.s-unfinished,[data-status=unfinished]{--c:#0090ff}
.s-pending,[data-status=pending]{--c:#c1c8cd}.s-running{--c:#0090ff}.s-interrupted{--c:#f76b15}
.s-unknown{--c:#60646c}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;background:var(--c);color:#fff;
font-size:12px;font-weight:600;white-space:nowrap}
.badge{font-size:13px;padding:3px 12px;vertical-align:3px;margin-left:8px}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.stat{border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.stat .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.stat .v{font-size:21px;font-weight:650;margin-top:2px}
.stat .sub{font-size:12px;color:var(--muted)}
.counts{display:flex;flex-wrap:wrap;gap:6px;margin-top:10px}
.count{display:inline-flex;align-items:center;gap:6px;border:1px solid var(--line);border-radius:999px;
padding:2px 10px 2px 7px;font-size:13px}
.dot{width:10px;height:10px;border-radius:50%;background:var(--c);display:inline-block}
.slowest{margin:10px 0 0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:6px 16px;font-size:13px}
.timeline-wrap{overflow-x:auto}
svg.timeline{width:100%;min-width:760px;height:auto;display:block;font-family:inherit}
.lane-bg{fill:#f9fafb}.lane-bg.odd{fill:#f1f3f5}
.lane-label{font-size:12px;fill:var(--ink);font-family:var(--mono)}
.grid line{stroke:#dfe3e8;stroke-width:1}
.grid text,.axis-title{font-size:11px;fill:var(--muted)}
rect.bar{fill:var(--c);stroke:#fff;stroke-width:.4;cursor:pointer}
rect.bar.merged{stroke:none}
rect.bar.s-unfinished{fill-opacity:.55;stroke:var(--c);stroke-dasharray:3 2}
rect.bar:hover{fill-opacity:.8;stroke:var(--ink);stroke-width:1}
rect.bar.selected{stroke:var(--ink);stroke-width:1.6}
rect.bar.dim{fill-opacity:.12}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:13px;margin:8px 0 0;color:var(--muted)}
.never{margin-top:10px;font-size:13px}
.chip{display:inline-block;min-width:26px;text-align:center;margin:2px;padding:0 5px;border-radius:4px;
background:var(--c);color:#fff;font-family:var(--mono);font-size:11.5px}
.chip.dim{opacity:.25}.chip.selected{outline:2px solid var(--ink)}
details.failure{border:1px solid var(--line);border-left:4px solid var(--c);border-radius:8px;
padding:8px 12px;margin:8px 0;background:#fff}
details.failure summary{cursor:pointer;overflow-wrap:anywhere}
pre{background:#f6f7f9;border:1px solid var(--line);border-radius:6px;padding:8px 10px;margin:8px 0;
overflow:auto;max-height:320px;white-space:pre-wrap;overflow-wrap:anywhere}
.toolbar{display:flex;flex-wrap:wrap;align-items:center;gap:8px 14px;margin-bottom:10px}
.toolbar label{display:inline-flex;align-items:center;gap:5px;font-size:13px;cursor:pointer}
.toolbar input[type=search]{flex:1;min-width:220px;padding:6px 10px;border:1px solid var(--line);
border-radius:6px;font:inherit}
.split{display:grid;grid-template-columns:minmax(0,1.5fr) minmax(0,1fr);gap:14px;align-items:start}
@media (max-width:980px){.split{grid-template-columns:1fr}}
.table-wrap{max-height:560px;overflow:auto;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{position:sticky;top:0;background:#f1f3f5;font-weight:600;white-space:nowrap;z-index:1}
th[data-sort]{cursor:pointer}th[data-sort]:hover{color:var(--accent)}
#items td:first-child,#items td:nth-child(n+3):nth-child(-n+6){text-align:right;font-variant-numeric:tabular-nums;
font-family:var(--mono);font-size:12px}
#items td:nth-child(n+7){max-width:120px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;
font-family:var(--mono);font-size:12px}
tbody tr{cursor:pointer}tbody tr:hover{background:#f3f6ff}tbody tr.selected{background:#e6edfe}
#log-view{position:sticky;top:10px;border:1px solid var(--line);border-radius:8px;padding:12px 14px;
min-height:240px;max-height:calc(100vh - 20px);overflow:auto}
#log-head dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0 10px;font-size:13px}
#log-head dt{color:var(--muted)}#log-head dd{margin:0;overflow-wrap:anywhere;font-family:var(--mono);font-size:12px}
ol.log-lines{list-style:none;margin:6px 0;padding:0;font-family:var(--mono);font-size:12px}
ol.log-lines li{padding:2px 4px;border-bottom:1px dashed #eceef1;white-space:pre-wrap;overflow-wrap:anywhere}
ol.log-lines li.hit{background:#fff3c4}
ol.log-lines i{font-style:normal;color:var(--muted);margin-right:8px}
ol.log-lines b{display:inline-block;min-width:62px;margin-right:6px}
ol.log-lines u{text-decoration:none;color:#7c66dc;margin-right:8px}
.l10 b{color:#8b8d98}.l20 b{color:#0d74ce}.l30 b{color:#ab6400}.l40 b,.l50 b{color:#dc3e42}
.l30{background:#fffaf0}.l40,.l50{background:#fff5f5}
.err{border-left:3px solid var(--c);padding:2px 0 2px 10px;margin:6px 0}
.note{font-size:12.5px;color:var(--muted);margin:6px 0}
footer{color:var(--muted);font-size:12px;margin-top:24px}
"""

JS = """
(() => {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const view = $("#log-view"), head = $("#log-head"), panel = $("#log-panel");
  const rows = $$("#items tbody tr"), marks = $$("#timeline [data-status]");
  const rowOf = new Map(rows.map((row) => [row.dataset.offset, row]));
  const boxes = $$("#filters input[type=checkbox]"), search = $("#search"), shown = $("#shown");
  const texts = new Map();

  function textOf(offset) {
    if (!texts.has(offset)) {
      const tpl = document.getElementById("log-" + offset), row = rowOf.get(offset);
      const text = (tpl ? tpl.content.textContent : "") + " " + (row ? row.textContent : "");
      texts.set(offset, text.toLowerCase());
    }
    return texts.get(offset);
  }

  function showItem(offset, scroll) {
    const tpl = document.getElementById("log-" + offset), row = rowOf.get(offset);
    const title = document.createElement("h3");
    title.textContent = "Item " + offset;
    head.replaceChildren(title);
    if (row) {
      const list = document.createElement("dl");
      list.dataset.status = row.dataset.status;  // the outcome pill's colour
      $$("#items thead th").forEach((th, i) => {
        if (i === 0) return;
        const dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.textContent = th.textContent;
        dd.append(...Array.from(row.cells[i].childNodes, (node) => node.cloneNode(true)));
        list.append(dt, dd);
      });
      head.append(list);
    }
    if (tpl) {
      panel.replaceChildren(tpl.content.cloneNode(true));
    } else {
      const note = document.createElement("p");
      note.className = "note";
      note.textContent = "This item logged nothing.";
      panel.replaceChildren(note);
    }
    view.dataset.item = offset;
    $$(".selected").forEach((el) => el.classList.remove("selected"));
    $$('[data-offset="' + offset + '"]').forEach((el) => el.classList.add("selected"));
    highlight();
    if (scroll) view.scrollIntoView({block: "nearest"});
  }

  function query() { return search.value.trim().toLowerCase(); }

  function highlight() {
    const q = query();
    for (const li of $$("ol.log-lines li", panel)) {
      li.classList.toggle("hit", !!q && li.textContent.toLowerCase().includes(q));
    }
  }

  function applyFilters() {
    const on = new Set(boxes.filter((box) => box.checked).map((box) => box.value)), q = query();
    let count = 0;
    for (const row of rows) {
      const ok = on.has(row.dataset.status) && (!q || textOf(row.dataset.offset).includes(q));
      row.hidden = !ok;
      if (ok) count += 1;
    }
    for (const el of marks) {
      const one = el.dataset.offset !== undefined && el.dataset.items === undefined;
      const ok = on.has(el.dataset.status) && (!q || (one && textOf(el.dataset.offset).includes(q)));
      el.classList.toggle("dim", !ok);
    }
    shown.textContent = count + " of " + rows.length + " rows";
    highlight();
  }

  function sortBy(th) {
    const index = th.cellIndex, up = th.dataset.dir !== "asc";
    const key = (row) => { const v = parseFloat(row.cells[index].textContent); return isNaN(v) ? -1 : v; };
    $$("#items thead th").forEach((other) => delete other.dataset.dir);
    th.dataset.dir = up ? "asc" : "desc";
    const body = $("#items tbody");
    body.append(...rows.slice().sort((a, b) => (up ? key(a) - key(b) : key(b) - key(a))));
  }

  function fromHash() {
    const match = /^#item-(\\d+)$/.exec(location.hash);
    if (match) showItem(match[1], true);
  }

  document.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (th) { sortBy(th); return; }
    const el = event.target.closest("[data-offset]");
    if (!el) return;
    event.preventDefault();
    history.replaceState(null, "", "#item-" + el.dataset.offset);
    showItem(el.dataset.offset, !el.closest("#items"));
  });
  boxes.forEach((box) => box.addEventListener("change", applyFilters));
  search.addEventListener("input", applyFilters);
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""


def csp_hash(source: str) -> str:
    """The Content-Security-Policy source for exactly this inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"
