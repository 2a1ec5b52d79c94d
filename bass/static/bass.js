// The dashboard's behaviour: live parts of pages that update in place (morphed, so the
// reader's scroll, selection, focus, typed text and opened steps stay as they were),
// the log viewer (a window over a step's lines, fetched by number), links to a line,
// and times that tick.
"use strict";

const LINE_HEIGHT = 18; // px, one unwrapped line (bass.css .lv-line)
const PAGE = 500; // lines fetched at once
const KEEP_PAGES = 40; // pages kept in memory per viewer (the DOM holds one screen)
const MAX_SPACER = 8_000_000; // px: past it, scroll positions are scaled to line numbers
const LIVE_POLL = 400; // ms between asks for a running step's new lines
const GROUP_START = /^(?:::group::|##\[group\])(.*)$/; // as bass.ui.logview reads them
const GROUP_END = /^(?:::endgroup::|##\[endgroup\])/;

let clockSkew = 0; // server's clock minus this browser's, from the Date of answers
const touched = new WeakSet(); // <details> the reader opened or closed
const viewers = new Map(); // span id → LogView

// ---- times ---------------------------------------------------------------------

function shortDuration(ms) {
  const s = Math.max(ms, 0) / 1000;
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

function ago(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (s >= size) return `${Math.floor(s / size)}${unit} ago`;
  }
  return `${s}s ago`;
}

function tick() {
  const now = Date.now() + clockSkew;
  for (const el of document.querySelectorAll(".ticking[data-since]")) {
    el.textContent = "running " + shortDuration(now - Number(el.dataset.since));
  }
  for (const el of document.querySelectorAll("time[data-ago]")) {
    el.textContent = ago(now - Date.parse(el.getAttribute("datetime")));
  }
}

// ---- live parts of pages ---------------------------------------------------------

const morphConfig = {
  ignoreActiveValue: true,
  restoreFocus: true,
  callbacks: {
    beforeNodeMorphed(old, fresh) {
      if (!(old instanceof Element)) return true;
      if (old.hasAttribute("data-keep")) return false; // e.g. a search box being typed in
      if (old.classList.contains("logview") && fresh instanceof Element) {
        const view = viewers.get(old.dataset.span);
        old.dataset.last = fresh.dataset.last;
        old.toggleAttribute("data-running", fresh.hasAttribute("data-running"));
        if (view) view.grew();
        return !view; // a viewer's lines are its own
      }
      return true;
    },
    beforeAttributeUpdated(name, node, change) {
      // a step the reader opened or closed stays so; a step is opened (it failed, it
      // runs), never closed under the reader's eyes
      if (name !== "open" || node.tagName !== "DETAILS") return true;
      return !touched.has(node) && change !== "remove";
    },
  },
};

function refreshEvery(root) {
  const wait = Number(root.dataset.refresh);
  if (!wait) return;
  setTimeout(async () => {
    if (document.hidden) return refreshEvery(root);
    try {
      const answer = await fetch(location.href, { headers: { "X-Bass-Fragment": "1" }, cache: "no-store" });
      const date = Date.parse(answer.headers.get("date"));
      if (date) clockSkew = date - Date.now();
      if (answer.ok) {
        Idiomorph.morph(root, await answer.text(), morphConfig);
        hydrate(document);
        document.dispatchEvent(new CustomEvent("bass:refreshed"));
      }
    } catch (e) {
      // the server restarts or the network drops: the next turn tries again
    }
    const current = document.getElementById(root.id);
    if (current) refreshEvery(current);
  }, wait);
}

// ---- the log viewer ----------------------------------------------------------------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function clockOf(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

class LogView {
  constructor(root, source, download, target) {
    this.root = root;
    this.span = root.dataset.span;
    this.source = source;
    this.pages = new Map(); // page number → {lines: [...], complete}
    this.pending = new Set();
    this.shown = new Map(); // line number → element in the window
    this.following = false;
    this.target = null; // highlighted line
    this.hits = [];
    this.groups = []; // {start, end (0: not ended yet), title, open}: ::group:: markers
    this.hidden = []; // [first, last] line ranges inside closed groups, sorted, merged
    this.build(download);
    this.last = Number(root.dataset.last) || 0;
    if (root.dataset.seed) this.keep(JSON.parse(root.dataset.seed)); // the page's first lines
    this.sizeSpacer();
    const at = target || Number(root.dataset.at) || 0;
    if (at) this.jump(at);
    else this.toEnd();
    this.live();
    this.loadGroups(at);
  }

  build(download) {
    const bar = el("div", "lv-bar");
    this.find = el("input", "lv-find");
    Object.assign(this.find, { type: "search", placeholder: "find in this step" });
    this.find.setAttribute("aria-label", "find in this step");
    this.hitCount = el("span", "lv-hits muted");
    const prev = el("button", "lv-prev", "↑");
    const next = el("button", "lv-next", "↓");
    prev.type = next.type = "button";
    prev.title = "previous match";
    next.title = "next match";
    const wrap = this.toggle("wrap", "lv-wrap");
    const times = this.toggle("times", "lv-times");
    this.followButton = el("button", "lv-follow", "follow");
    this.followButton.type = "button";
    this.followButton.title = "keep the newest line in view";
    const raw = el("a", "lv-raw", "raw");
    raw.href = `${download}?span=${encodeURIComponent(this.span)}`;
    this.count = el("span", "lv-count muted");
    bar.append(this.find, this.hitCount, prev, next, wrap, times, this.followButton, raw, this.count);
    this.scroller = el("div", "lv-scroll");
    this.scroller.tabIndex = 0;
    this.spacer = el("div", "lv-spacer");
    this.window = el("div", "lv-window");
    this.spacer.append(this.window);
    this.scroller.append(this.spacer);
    this.root.replaceChildren(bar, this.scroller);

    let searching;
    this.find.addEventListener("input", () => {
      clearTimeout(searching);
      searching = setTimeout(() => this.search(this.find.value), 250);
    });
    this.find.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); this.step(e.shiftKey ? -1 : 1); }
    });
    prev.addEventListener("click", () => this.step(-1));
    next.addEventListener("click", () => this.step(1));
    this.followButton.addEventListener("click", () => this.toEnd());
    this.scroller.addEventListener("scroll", () => this.scrolled(), { passive: true });
  }

  toggle(name, cls) {
    const label = el("label", "lv-toggle");
    const box = el("input");
    box.type = "checkbox";
    box.checked = localStorage.getItem("bass.log." + name) === "1";
    this.root.classList.toggle(cls, box.checked);
    box.addEventListener("change", () => {
      localStorage.setItem("bass.log." + name, box.checked ? "1" : "0");
      this.root.classList.toggle(cls, box.checked);
      this.render(true);
    });
    label.append(box, " " + name);
    return label;
  }

  // geometry: `position` is the (fractional) index of the top line, 0-based
  get rows() { return Math.max(Math.ceil(this.scroller.clientHeight / LINE_HEIGHT), 1); }
  get maxTop() { return Math.max(this.total - this.rows, 0); }
  // rows shown: every line but those inside closed groups
  get total() { return this.last - this.hidden.reduce((n, [a, b]) => n + Math.max(Math.min(b, this.last) - a + 1, 0), 0); }

  rowToLine(row) { // 1-based both
    let n = row;
    for (const [a, b] of this.hidden) { if (n >= a) n += b - a + 1; else break; }
    return n;
  }

  lineToRow(n) {
    let row = n;
    for (const [a, b] of this.hidden) {
      if (b < n) row -= b - a + 1;
      else if (a <= n) return row - (n - a + 1); // inside: its group's header
      else break;
    }
    return row;
  }

  sizeSpacer() {
    const rows = this.total;
    const height = Math.min(rows * LINE_HEIGHT + 4, MAX_SPACER);
    this.spacer.style.height = `${height}px`;
    this.scroller.style.height = `${Math.min(Math.max(rows, 3) * LINE_HEIGHT + 6, Math.round(window.innerHeight * 0.65))}px`;
    this.count.textContent = `${this.last.toLocaleString("en-US")} lines`;
    this.root.style.setProperty("--digits", Math.max(String(this.last).length, 3));
  }

  position() {
    const range = this.spacer.offsetHeight - this.scroller.clientHeight;
    if (range <= 0) return 0;
    return Math.min(this.scroller.scrollTop / range, 1) * this.maxTop;
  }

  scrollToLine(top) {
    const range = this.spacer.offsetHeight - this.scroller.clientHeight;
    const want = Math.round(this.maxTop ? (Math.min(Math.max(top, 0), this.maxTop) / this.maxTop) * range : 0);
    if (Math.abs(this.scroller.scrollTop - want) >= 1) {
      this.quiet = true; // the scroll event this causes is not the reader's
      this.scroller.scrollTop = want;
    }
    this.render();
  }

  atBottom() {
    return this.scroller.scrollTop + this.scroller.clientHeight >= this.spacer.offsetHeight - 2;
  }

  scrolled() {
    if (this.quiet) { this.quiet = false; } else { this.setFollowing(this.atBottom()); }
    this.render();
  }

  setFollowing(on) {
    this.following = on;
    this.followButton.classList.toggle("on", on);
  }

  toEnd() {
    this.setFollowing(true);
    this.scrollToLine(this.maxTop);
  }

  jump(n) {
    this.target = n;
    this.setFollowing(false);
    if (this.groups.some((g) => !g.open && g.start < n && (!g.end || n <= g.end))) {
      for (const g of this.groups) if (g.start < n && (!g.end || n <= g.end)) g.open = true;
      this.regroup();
    }
    this.scrollToLine(this.lineToRow(n) - 1 - Math.floor(this.rows / 2));
  }

  // groups: `::group::title` … `::endgroup::` (and `##[group]`), closed unless they
  // hold the line the viewer opens at or are still running
  async loadGroups(at) {
    try {
      const answer = await fetch(`${this.source}?span=${encodeURIComponent(this.span)}&groups=1`);
      if (!answer.ok) return;
      const data = await answer.json();
      if (!data.groups.length) return;
      const holds = (g, n) => n && g.start < n && (!g.end || n <= g.end);
      const live = this.groups.filter((g) => !data.groups.some(([start]) => start === g.start));
      this.groups = data.groups.map(([start, end, title]) => ({ start, end, title, open: !end || holds({ start, end }, at || this.target) }));
      this.groups.push(...live);
      this.regroup();
      if (this.following) this.scrollToLine(this.maxTop);
      else if (this.target) this.scrollToLine(this.lineToRow(this.target) - 1 - Math.floor(this.rows / 2));
    } catch (e) { /* no groups then */ }
  }

  groupAt(n) { return this.groups.find((g) => g.start === n); }

  noteMarker(line) { // a live line that opens or closes a group
    const text = line.body.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
    const opened = text.match(GROUP_START);
    if (this.groupAt(line.n)) return;
    if (opened) this.groups.push({ start: line.n, end: 0, title: opened[1], open: true });
    else if (GROUP_END.test(text)) {
      const g = this.groups.findLast((x) => !x.end);
      if (g) g.end = line.n;
    }
  }

  regroup() {
    const ranges = this.groups.filter((g) => !g.open).map((g) => [g.start + 1, g.end || Infinity]).sort((x, y) => x[0] - y[0]);
    this.hidden = [];
    for (const r of ranges) {
      const prev = this.hidden[this.hidden.length - 1];
      if (prev && r[0] <= prev[1] + 1) prev[1] = Math.max(prev[1], r[1]);
      else this.hidden.push(r);
    }
    this.sizeSpacer();
    this.render(true);
  }

  // lines ---------------------------------------------------------------------------

  // lines the server sent (in order) into their pages; a page knows the run of lines
  // it holds from its start (`from`…`upTo`), and is fetched whole when that falls short
  keep(lines) {
    for (const l of lines) {
      const p = Math.floor((l.n - 1) / PAGE);
      let page = this.pages.get(p);
      if (!page) this.pages.set(p, (page = { lines: new Map(), from: l.n, upTo: l.n - 1 }));
      page.lines.set(l.n, l);
      if (l.n === page.upTo + 1) page.upTo = l.n;
    }
  }

  line(n) {
    const page = this.pages.get(Math.floor((n - 1) / PAGE));
    return page ? page.lines.get(n) : undefined;
  }

  need(numbers) {
    for (const p of new Set(numbers.map((n) => Math.floor((n - 1) / PAGE)))) {
      const page = this.pages.get(p);
      if ((page && page.from <= p * PAGE + 1 && page.upTo >= Math.min(this.last, (p + 1) * PAGE)) || this.pending.has(p)) continue;
      this.fetchPage(p);
    }
  }

  async fetchPage(p) {
    this.pending.add(p);
    const from = p * PAGE + 1, to = (p + 1) * PAGE;
    try {
      const answer = await fetch(`${this.source}?span=${encodeURIComponent(this.span)}&from=${from}&to=${to}`);
      if (!answer.ok) return;
      const data = await answer.json();
      const lines = new Map(data.lines.map((l) => [l.n, l]));
      this.pages.delete(p); // the newest page is the last one evicted
      this.pages.set(p, { lines, from, upTo: Math.min(data.last, to) });
      while (this.pages.size > KEEP_PAGES) this.pages.delete(this.pages.keys().next().value);
      if (data.last > this.last) { this.last = data.last; this.sizeSpacer(); }
      if (this.following) this.scrollToLine(this.maxTop); else this.render();
    } catch (e) {
      // try again when next shown
    } finally {
      this.pending.delete(p);
    }
  }

  lineElement(n) {
    const data = this.line(n);
    const row = el("div", "lv-line");
    row.dataset.n = n;
    const number = el("a", "lv-n", String(n));
    number.href = `#step-${this.span}-L${n}`;
    number.setAttribute("aria-label", `line ${n}`);
    row.append(number);
    if (!data) { row.classList.add("lv-pending"); return row; }
    if (data.stream === "stderr") row.classList.add("lv-stderr");
    const builderDefault = data.stream && data.severity === (data.stream === "stderr" ? 13 : 9);
    if (!builderDefault && data.severity >= 17) row.classList.add("lv-error");
    else if (!builderDefault && data.severity >= 13) row.classList.add("lv-warn");
    row.append(el("span", "lv-t", clockOf(data.time_ms)));
    const text = el("span", "lv-x");
    const group = this.groupAt(n);
    if (group) {
      const toggle = el("button", "lv-fold", group.open ? "▾" : "▸");
      toggle.type = "button";
      toggle.setAttribute("aria-expanded", String(group.open));
      toggle.title = group.open ? "close this group" : "open this group";
      toggle.addEventListener("click", () => {
        const onScreen = this.lineToRow(group.start) - 1 - Math.floor(this.position());
        group.open = !group.open;
        this.setFollowing(false);
        this.regroup();
        this.scrollToLine(this.lineToRow(group.start) - 1 - Math.max(onScreen, 0)); // it stays put
      });
      row.classList.add("lv-group");
      text.append(toggle, el("span", "lv-title", group.title || "group"));
      if (!group.open) text.append(el("span", "muted", ` ${((group.end || this.last) - group.start).toLocaleString("en-US")} lines`));
    } else {
      text.innerHTML = data.html; // rendered and escaped by the server (bass.ansi.to_html)
    }
    row.append(text);
    return row;
  }

  render(redraw = false) {
    if (redraw) { for (const e of this.shown.values()) e.remove(); this.shown.clear(); }
    const pos = this.position();
    const total = this.total;
    const atEnd = total > 0 && (this.following || this.atBottom());
    const rows = this.rows + 2;
    let first = Math.floor(pos) + 1;
    if (atEnd) first = Math.max(total - rows + 1, 1);
    const numbers = [];
    for (let r = first; r <= Math.min(first + rows - 1, total); r++) numbers.push(this.rowToLine(r));
    this.need(numbers);
    const wanted = new Set(numbers);
    for (const [n, e] of this.shown) if (!wanted.has(n)) { e.remove(); this.shown.delete(n); }
    let before = null;
    for (const n of numbers.reverse()) {
      let row = this.shown.get(n);
      if (!row) {
        row = this.lineElement(n);
        this.shown.set(n, row);
        this.window.insertBefore(row, before);
      } else if (row.classList.contains("lv-pending") && this.line(n)) {
        const fresh = this.lineElement(n);
        row.replaceWith(fresh);
        this.shown.set(n, fresh);
        row = fresh;
      }
      row.classList.toggle("lv-target", n === this.target);
      row.classList.toggle("lv-hit", this.hitSet?.has(n) || false);
      before = row;
    }
    // the window sits where the scroll position says; at the end, on the bottom
    const top = this.scroller.scrollTop - (pos - Math.floor(pos)) * LINE_HEIGHT;
    if (atEnd) { this.window.style.top = ""; this.window.style.bottom = "0"; }
    else { this.window.style.bottom = ""; this.window.style.top = `${Math.max(top, 0)}px`; }
  }

  // growth of a running step --------------------------------------------------------

  grew() {
    const last = Number(this.root.dataset.last) || 0;
    if (last > this.last) { this.last = last; this.sizeSpacer(); }
    if (this.following) this.scrollToLine(this.maxTop);
    else this.render();
    this.live();
  }

  live() {
    if (this.polling || !this.root.hasAttribute("data-running")) return;
    this.polling = true;
    const turn = async () => {
      if (!this.root.isConnected) { this.polling = false; return; }
      const details = this.root.closest("details");
      if (!document.hidden && (!details || details.open)) {
        try {
          const answer = await fetch(`${this.source}?span=${encodeURIComponent(this.span)}&from=${this.last + 1}&to=${this.last + PAGE}`);
          if (answer.ok) {
            const data = await answer.json();
            if (data.lines.length) {
              data.lines.forEach((l) => this.noteMarker(l));
              this.keep(data.lines);
              this.last = Math.max(this.last, data.last);
              this.sizeSpacer();
              if (this.following) this.scrollToLine(this.maxTop); else this.render();
            }
            if (!["queued", "running"].includes(data.state)) this.root.removeAttribute("data-running");
          }
        } catch (e) { /* next turn */ }
      }
      if (this.root.hasAttribute("data-running")) setTimeout(turn, LIVE_POLL);
      else this.polling = false;
    };
    setTimeout(turn, LIVE_POLL);
  }

  // search within the step ----------------------------------------------------------

  async search(text) {
    this.hits = [];
    this.hitSet = new Set();
    this.hitCount.textContent = "";
    if (text.trim()) {
      const answer = await fetch(`${this.source}?span=${encodeURIComponent(this.span)}&q=${encodeURIComponent(text)}`);
      if (answer.ok && text === this.find.value) {
        this.hits = (await answer.json()).hits;
        this.hitSet = new Set(this.hits);
        const n = this.hits.length;
        this.hitCount.textContent = n ? `${n.toLocaleString("en-US")} match${n === 1 ? "" : "es"}` : "no match";
        this.current = -1;
        if (this.hits.length) this.step(1);
      }
    }
    this.render();
  }

  step(direction) {
    if (!this.hits.length) return;
    const from = this.target || Math.floor(this.position()) + 1;
    let i = direction > 0 ? this.hits.findIndex((n) => n > from) : this.hits.findLastIndex((n) => n < from);
    if (i < 0) i = direction > 0 ? 0 : this.hits.length - 1; // wrap around
    this.hitCount.textContent = `${i + 1} of ${this.hits.length.toLocaleString("en-US")}`;
    this.jump(this.hits[i]);
  }
}

// ---- the grid's folded columns ---------------------------------------------------------

// A group's columns fold into one (its header's ▾): each row then shows the worst status
// of the group's cells, linked to the first of them that failed. Kept per pipeline.
const WORST = ["failed", "error", "timeout", "cancelled", "running", "ok", "skipped"];

function foldGrid() {
  const table = document.querySelector("#grid table.grid");
  if (!table) return;
  const key = "bass.folded:" + location.pathname;
  const folded = new Set(JSON.parse(localStorage.getItem(key) || "[]"));
  const under = (el, path) => (el.dataset.path || el.dataset.step || "").startsWith(path + "/");
  table.querySelectorAll("td.cell.fold-sum").forEach((td) => td.remove());
  table.querySelectorAll("[data-hidden-by-fold]").forEach((el) => { el.hidden = false; el.removeAttribute("data-hidden-by-fold"); });
  const rows = table.tHead.rows.length;
  for (const th of table.querySelectorAll("th[data-group]")) {
    const path = th.dataset.group;
    const button = th.querySelector("button.fold");
    const closed = folded.has(path) && ![...folded].some((p) => p !== path && path.startsWith(p + "/"));
    th.dataset.colspan ??= th.colSpan;
    th.dataset.rowspan ??= th.rowSpan;
    th.colSpan = closed ? 1 : Number(th.dataset.colspan);
    th.rowSpan = closed ? rows - th.parentElement.rowIndex : Number(th.dataset.rowspan);
    button.textContent = closed ? "▸" : "▾";
    button.setAttribute("aria-expanded", String(!closed));
    button.onclick = () => {
      folded.has(path) ? folded.delete(path) : folded.add(path);
      localStorage.setItem(key, JSON.stringify([...folded]));
      foldGrid();
    };
    if (!closed) continue;
    const hide = (el) => { el.hidden = true; el.setAttribute("data-hidden-by-fold", ""); };
    table.tHead.querySelectorAll("th[data-path]").forEach((h) => under(h, path) && hide(h));
    for (const tr of table.tBodies[0].rows) {
      const cells = [...tr.querySelectorAll("td.cell")].filter((td) => under(td, path));
      if (!cells.length) continue;
      const worst = cells.map((td) => td.dataset.status).filter(Boolean)
        .sort((a, b) => WORST.indexOf(a) - WORST.indexOf(b))[0];
      const sum = document.createElement("td");
      sum.className = `cell fold-sum${worst ? " s-" + worst : " none"}`;
      sum.dataset.path = path;
      sum.title = `${path}: ${worst || "did not run"} (${cells.length} steps folded)`;
      const target = cells.find((td) => td.dataset.status === worst)?.querySelector("a");
      if (target) {
        const link = document.createElement("a");
        link.href = target.href;
        link.textContent = worst;
        sum.append(link);
      }
      cells[0].before(sum);
      cells.forEach(hide);
    }
  }
}

document.addEventListener("bass:refreshed", foldGrid);
document.addEventListener("DOMContentLoaded", foldGrid);

// ---- wiring ----------------------------------------------------------------------

let linked = null; // {span, line} of the address's #step-SPAN-LN, until its viewer starts

function startViewer(root) {
  if (viewers.has(root.dataset.span) && viewers.get(root.dataset.span).root === root) return viewers.get(root.dataset.span);
  const build = document.getElementById("build");
  if (!build) return null;
  const target = linked && linked.span === root.dataset.span ? linked.line : 0;
  if (target) linked = null;
  const view = new LogView(root, build.dataset.lines, build.dataset.log, target);
  viewers.set(root.dataset.span, view);
  return view;
}

// Viewers start when their step is open (a closed step's lines are not fetched).
function hydrate(scope) {
  for (const root of scope.querySelectorAll(".logview[data-span]")) {
    const details = root.closest("details");
    if (!details || details.open) startViewer(root);
  }
}

// #step-SPAN opens a step; #step-SPAN-L123 also shows its line 123, highlighted.
function followHash() {
  const match = decodeURIComponent(location.hash.slice(1)).match(/^step-([0-9a-f]+)(?:-L(\d+))?$/);
  if (!match) return false;
  linked = match[2] ? { span: match[1], line: Number(match[2]) } : null;
  const step = document.getElementById("step-" + match[1]);
  if (!step) return false;
  const details = step.tagName === "DETAILS" ? step : step.querySelector(":scope > details");
  if (details) details.open = true;
  document.querySelectorAll(".target").forEach((e) => e.classList.remove("target"));
  step.classList.add("target");
  const root = step.querySelector(".logview");
  if (match[2] && root) {
    const fresh = !viewers.has(match[1]) || viewers.get(match[1]).root !== root;
    const view = startViewer(root);
    if (view && !fresh) view.jump(Number(match[2]));
    root.scrollIntoView({ block: "center" });
  } else {
    step.scrollIntoView({ block: "center" });
  }
  return true;
}

document.addEventListener("toggle", (event) => {
  const details = event.target;
  if (details.tagName === "DETAILS" && details.open) hydrate(details);
}, true); // toggle does not bubble

document.addEventListener("click", (event) => {
  const summary = event.target.closest && event.target.closest("summary");
  if (summary && summary.parentElement.tagName === "DETAILS") touched.add(summary.parentElement);
});

window.addEventListener("hashchange", followHash);

document.addEventListener("DOMContentLoaded", () => {
  if (!followHash()) {
    hydrate(document);
    // a failed build opens at its failing lines
    const failing = document.querySelector(".logview[data-at]");
    if (failing) failing.closest("li.step, details")?.scrollIntoView({ block: "start" });
  } else {
    hydrate(document);
  }
  for (const root of document.querySelectorAll("[data-refresh]")) refreshEvery(root);
  setInterval(tick, 1000);
});
