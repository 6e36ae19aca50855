// One widget per question type. A widget owns its value, draws its controls in the question card
// (render) and, for span, bbox, ranking and preference, also on the task field it refers to
// (bindField). Keys reach the active widget through key(event); it returns true when it used one.

import { h, kbd, colorClass, keyFor, indexForKey } from "./dom.js";

const STRENGTH_WORDS = { 2: ["slightly", "clearly"], 3: ["slightly", "clearly", "much"], 4: ["slightly", "somewhat", "clearly", "much"] };

class Widget {
  constructor(question, ctx) {
    this.q = question;
    this.ctx = ctx; // { changed(), advance(), activate(widget), editable }
    this.editable = ctx.editable !== false;
    this.body = h("div", { class: "q-body" });
  }
  hint() { return ""; }
  render() { return this.body; }
  bindField() {}
  get value() { return undefined; }
  set value(_v) {}
  answered() { return this.value !== undefined; }
  key() { return false; }
  onActivate() {}
  onDeactivate() {}
  setEditable(on) { this.editable = on; this.repaint(); }
  repaint() {}
  changed() { this.repaint(); this.ctx.changed(this); }
}

function optionButton(label, index, on, onClick, { withKey = true } = {}) {
  const key = withKey ? keyFor(index) : null;
  return h("button", {
    type: "button",
    class: `opt ${colorClass(index)}${on ? " on" : ""}`,
    "aria-pressed": on ? "true" : "false",
    onclick: onClick,
  }, key ? kbd(key) : null, label);
}

// ------------------------------------------------------------------ label, multi_label

class LabelWidget extends Widget {
  constructor(q, ctx) { super(q, ctx); this.choice = undefined; this.repaint(); }
  hint() { return "number keys"; }
  get value() { return this.choice; }
  set value(v) { this.choice = this.q.labels.includes(v) ? v : undefined; this.repaint(); }
  pick(i) {
    if (!this.editable || i < 0 || i >= this.q.labels.length) return false;
    this.choice = this.q.labels[i];
    this.changed();
    this.ctx.advance(this);
    return true;
  }
  key(e) { return this.pick(indexForKey(e.key)); }
  repaint() {
    this.body.replaceChildren(h("div", { class: "options" },
      this.q.labels.map((label, i) => optionButton(label, i, label === this.choice, () => this.pick(i)))));
  }
}

class MultiLabelWidget extends Widget {
  constructor(q, ctx) { super(q, ctx); this.chosen = new Set(); this.touched = false; this.repaint(); }
  hint() {
    const { min_selected: lo = 0, max_selected: hi } = this.q;
    if (hi && lo) return `pick ${lo}–${hi}`;
    if (hi) return `at most ${hi}`;
    if (lo) return `at least ${lo}`;
    return "any number";
  }
  get value() {
    if (!this.touched && this.chosen.size === 0) return undefined;
    return this.q.labels.filter((l) => this.chosen.has(l));
  }
  set value(v) {
    this.chosen = new Set(Array.isArray(v) ? v.filter((l) => this.q.labels.includes(l)) : []);
    this.touched = Array.isArray(v);
    this.repaint();
  }
  toggle(i) {
    if (!this.editable || i < 0 || i >= this.q.labels.length) return false;
    const label = this.q.labels[i];
    if (this.chosen.has(label)) this.chosen.delete(label); else this.chosen.add(label);
    this.touched = true;
    this.changed();
    return true;
  }
  key(e) { return this.toggle(indexForKey(e.key)); }
  repaint() {
    this.body.replaceChildren(h("div", { class: "options" },
      this.q.labels.map((label, i) => optionButton(label, i, this.chosen.has(label), () => this.toggle(i)))));
  }
}

// ------------------------------------------------------------------ rating

class RatingWidget extends Widget {
  constructor(q, ctx) {
    super(q, ctx);
    this.values = [];
    for (let v = q.min; v <= q.max; v++) this.values.push(v);
    this.direct = q.min >= 0 && q.max <= 9; // the key is the value itself
    this.rating = undefined;
    this.repaint();
  }
  hint() { return this.direct ? `keys ${this.q.min}–${this.q.max}, ← →` : "number keys, ← →"; }
  get value() { return this.rating; }
  set value(v) { this.rating = Number.isInteger(v) && v >= this.q.min && v <= this.q.max ? v : undefined; this.repaint(); }
  set_(v, advance) {
    if (!this.editable) return false;
    this.rating = v;
    this.changed();
    if (advance) this.ctx.advance(this);
    return true;
  }
  key(e) {
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const step = e.key === "ArrowRight" ? 1 : -1;
      const start = this.rating === undefined ? (step > 0 ? this.q.min - 1 : this.q.max + 1) : this.rating;
      return this.set_(Math.min(this.q.max, Math.max(this.q.min, start + step)), false);
    }
    if (!/^[0-9]$/.test(e.key)) return false;
    if (this.direct) {
      const v = Number(e.key);
      return v >= this.q.min && v <= this.q.max ? this.set_(v, true) : false;
    }
    const i = indexForKey(e.key);
    return i < this.values.length ? this.set_(this.values[i], true) : false;
  }
  repaint() {
    const buttons = this.values.map((v, i) => h("button", {
      type: "button", class: `opt${v === this.rating ? " on" : ""}`, "aria-pressed": v === this.rating ? "true" : "false",
      onclick: () => this.set_(v, true),
    }, String(v), !this.direct && keyFor(i) ? h("kbd", {}, keyFor(i)) : null));
    this.body.replaceChildren(h("div", { class: "scale" }, buttons),
      h("div", { class: "scale-ends" }, h("span", {}, "low"), h("span", {}, "high")));
  }
}

// ------------------------------------------------------------------ candidates helpers

export function candidatesOf(value) {
  return (Array.isArray(value) ? value : []).map((c, i) => (typeof c === "string"
    ? { id: String(i), text: c, model: null }
    : { id: c.id ?? String(i), text: String(c.text ?? ""), model: c.model ?? null }));
}

// ------------------------------------------------------------------ ranking

class RankingWidget extends Widget {
  constructor(q, ctx) {
    super(q, ctx);
    this.cands = [];
    this.order = [];
    this.placed = 0; // leading items chosen by the labeler (keys); all of them once dragged
    this.list = null;
    this.repaint();
  }
  hint() { return "type numbers best first, or drag"; }
  bindField(container, value) {
    this.cands = candidatesOf(value);
    this.order = this.cands.map((_, i) => i);
    this.list = h("ol", { class: "rank-list" });
    container.append(this.list);
    this.repaint();
  }
  get complete() { return this.cands.length > 0 && this.placed >= this.cands.length; }
  get value() { return this.complete ? [...this.order] : undefined; }
  set value(v) {
    const n = this.cands.length;
    if (Array.isArray(v) && v.length === n && [...v].sort((a, b) => a - b).every((x, i) => x === i)) {
      this.order = [...v];
      this.placed = n;
    } else {
      this.order = this.cands.map((_, i) => i);
      this.placed = 0;
    }
    this.repaint();
  }
  pick(candidate) {
    const n = this.cands.length;
    if (!this.editable || candidate < 0 || candidate >= n) return false;
    const at = this.order.indexOf(candidate);
    if (at < this.placed) return true; // already ranked
    this.order.splice(at, 1);
    this.order.splice(this.placed, 0, candidate);
    this.placed += 1;
    if (this.placed === n - 1) this.placed = n; // the last one ranks itself
    this.changed();
    if (this.complete) this.ctx.advance(this);
    return true;
  }
  move(from, to) {
    if (!this.editable || to < 0 || to >= this.order.length || from === to) return;
    const [item] = this.order.splice(from, 1);
    this.order.splice(to, 0, item);
    this.placed = this.cands.length;
    this.changed();
  }
  keep() { if (this.editable) { this.placed = this.cands.length; this.changed(); } }
  reset() { if (this.editable) { this.order = this.cands.map((_, i) => i); this.placed = 0; this.changed(); } }
  key(e) {
    if (e.key === "Backspace") {
      if (this.placed > 0 && this.editable) { this.placed = Math.max(0, Math.min(this.placed, this.cands.length - 1) - 1); this.changed(); }
      return true;
    }
    const i = indexForKey(e.key);
    return i >= 0 ? this.pick(i) : false;
  }
  repaint() {
    const line = this.order.slice(0, this.placed).map((i) => i + 1).join(" › ");
    this.body.replaceChildren(
      h("div", { class: "order-line" }, this.placed ? line : h("span", { class: "muted" }, "best first: press the candidates' numbers")),
      h("div", { class: "row" },
        h("button", { type: "button", class: "btn btn-small", onclick: () => this.keep(), disabled: !this.editable }, "Keep this order"),
        h("button", { type: "button", class: "btn btn-small btn-ghost", onclick: () => this.reset(), disabled: !this.editable }, "Reset")));
    if (!this.list) return;
    let dragFrom = null;
    const items = this.order.map((candidate, pos) => {
      const c = this.cands[candidate];
      const placed = pos < this.placed;
      const item = h("li", {
        class: `rank-item${placed ? " placed" : ""}`, draggable: this.editable ? "true" : "false",
        dataset: { candidate: String(candidate) },
      },
      h("div", { class: "rank-pos" }, placed ? String(pos + 1) : "·"),
      h("div", {}, h("div", { class: "candidate-head" }, kbd(String(candidate + 1)), `Candidate ${candidate + 1}`,
        c.model ? h("span", { class: "model" }, c.model) : null), c.text),
      h("div", { class: "rank-moves" },
        h("button", { type: "button", title: "move up", "aria-label": "move up", onclick: () => this.move(pos, pos - 1) }, "▲"),
        h("button", { type: "button", title: "move down", "aria-label": "move down", onclick: () => this.move(pos, pos + 1) }, "▼")));
      item.addEventListener("dragstart", (ev) => { dragFrom = pos; item.classList.add("dragging"); ev.dataTransfer.effectAllowed = "move"; ev.dataTransfer.setData("text/plain", String(candidate)); });
      item.addEventListener("dragend", () => item.classList.remove("dragging"));
      item.addEventListener("dragover", (ev) => { ev.preventDefault(); item.classList.add("drop-before"); });
      item.addEventListener("dragleave", () => item.classList.remove("drop-before"));
      item.addEventListener("drop", (ev) => {
        ev.preventDefault();
        item.classList.remove("drop-before");
        const from = dragFrom ?? this.order.indexOf(Number(ev.dataTransfer.getData("text/plain")));
        if (from !== null && from >= 0) this.move(from, pos);
      });
      item.addEventListener("mousedown", () => this.ctx.activate(this));
      return item;
    });
    this.list.replaceChildren(...items);
  }
}

// ------------------------------------------------------------------ preference (A vs B)

class PreferenceWidget extends Widget {
  constructor(q, ctx) {
    super(q, ctx);
    this.choice = undefined;
    this.strength = undefined;
    this.levels = q.strength_levels || 0;
    this.phase = "choice";
    this.pair = null;
    this.repaint();
  }
  hint() { return this.q.allow_tie === false ? "1 = A, 2 = B" : "1 = A, 2 = B, 0 = tie"; }
  bindField(container, value) {
    const [a, b] = candidatesOf(value);
    const side = (c, letter, key, choice) => {
      const node = h("div", { class: "candidate", dataset: { side: choice } },
        h("div", { class: "candidate-head" }, kbd(key), `Response ${letter}`, c && c.model ? h("span", { class: "model" }, c.model) : null),
        c ? c.text : "(missing)");
      node.addEventListener("click", () => { this.ctx.activate(this); this.choose(choice); });
      return node;
    };
    this.pair = h("div", { class: "candidates pair" }, side(a, "A", "1", "a"), side(b, "B", "2", "b"));
    container.append(this.pair);
    this.repaint();
  }
  get value() {
    if (this.choice === undefined) return undefined;
    if (this.choice === "tie" || !this.levels) return { choice: this.choice };
    return this.strength === undefined ? undefined : { choice: this.choice, strength: this.strength };
  }
  set value(v) {
    const ok = v && ["a", "b", "tie"].includes(v.choice);
    this.choice = ok ? v.choice : undefined;
    this.strength = ok && Number.isInteger(v.strength) ? v.strength : undefined;
    this.phase = "choice";
    this.repaint();
  }
  choose(choice) {
    if (!this.editable) return false;
    if (choice === "tie" && this.q.allow_tie === false) return false;
    this.choice = choice;
    if (choice === "tie" || !this.levels) {
      this.strength = undefined;
      this.changed();
      this.ctx.advance(this);
    } else {
      this.phase = "strength";
      this.changed();
    }
    return true;
  }
  setStrength(s) {
    if (!this.editable || s < 1 || s > this.levels) return false;
    if (this.choice === undefined || this.choice === "tie") return false;
    this.strength = s;
    this.phase = "choice";
    this.changed();
    this.ctx.advance(this);
    return true;
  }
  onActivate() { this.phase = this.choice && this.choice !== "tie" && this.levels && this.strength === undefined ? "strength" : "choice"; this.repaint(); }
  key(e) {
    if (this.phase === "strength") {
      if (e.key === "Backspace") { this.phase = "choice"; this.repaint(); return true; }
      const i = indexForKey(e.key);
      return i >= 0 ? this.setStrength(i + 1) : false;
    }
    if (e.key === "1") return this.choose("a");
    if (e.key === "2") return this.choose("b");
    if (e.key === "0") return this.choose("tie");
    return false;
  }
  strengthLabel(s) {
    const words = STRENGTH_WORDS[this.levels];
    return words ? words[s - 1] : String(s);
  }
  repaint() {
    const btn = (label, key, choice) => h("button", {
      type: "button", class: `opt${this.choice === choice ? " on" : ""}`, "aria-pressed": this.choice === choice ? "true" : "false",
      onclick: () => this.choose(choice),
    }, kbd(key), label);
    const row = h("div", { class: "pref-row" }, btn("A is better", "1", "a"),
      this.q.allow_tie === false ? h("span") : btn("Tie", "0", "tie"), btn("B is better", "2", "b"));
    const parts = [row];
    if (this.levels) {
      const waiting = this.phase === "strength";
      const disabled = this.choice === undefined || this.choice === "tie";
      parts.push(h("div", { class: `strength${waiting ? " waiting" : ""}` },
        h("div", { class: "muted small" }, waiting ? "How much better? (number keys; Backspace to change A/B)" : "How much better?"),
        h("div", { class: "options" }, Array.from({ length: this.levels }, (_, i) => h("button", {
          type: "button", class: `opt${this.strength === i + 1 ? " on" : ""}`, disabled: disabled || !this.editable,
          onclick: () => this.setStrength(i + 1),
        }, kbd(String(i + 1)), this.strengthLabel(i + 1))))));
    }
    this.body.replaceChildren(...parts);
    if (this.pair) {
      for (const node of this.pair.children) {
        node.classList.toggle("chosen", node.dataset.side === this.choice);
        node.classList.toggle("tied", this.choice === "tie");
      }
    }
  }
}

// ------------------------------------------------------------------ free text

class TextWidget extends Widget {
  constructor(q, ctx) {
    super(q, ctx);
    this.min = q.min_length || 0;
    this.max = q.max_length || 10000;
    this.area = h("textarea", { maxlength: String(this.max), rows: "5", placeholder: "Type here…", "aria-label": q.title || q.name });
    this.counter = h("div", { class: "counter" });
    this.area.addEventListener("input", () => { this.updateCounter(); this.ctx.changed(this); });
    this.area.addEventListener("focus", () => this.ctx.activate(this));
    this.area.readOnly = !this.editable;
    this.body.append(this.area, this.counter);
    this.updateCounter();
  }
  hint() { return this.min ? `${this.min}–${this.max} characters` : `up to ${this.max} characters`; }
  get length() { return Array.from(this.area.value).length; }
  get value() {
    const text = this.area.value;
    if (text.length) return text;
    return this.q.required !== false && this.min === 0 ? "" : undefined;
  }
  set value(v) { this.area.value = typeof v === "string" ? v : ""; this.updateCounter(); }
  answered() { return this.area.value.length > 0 || (this.q.required !== false && this.min === 0); }
  updateCounter() {
    const n = this.length;
    this.counter.textContent = this.min ? `${n} / ${this.max} · at least ${this.min}` : `${n} / ${this.max}`;
    this.counter.classList.toggle("bad", n > this.max || (n > 0 && n < this.min));
  }
  onActivate() { if (this.editable) this.area.focus(); }
  setEditable(on) { this.editable = on; this.area.readOnly = !on; }
}

// ------------------------------------------------------------------ spans over a text field

class SpanWidget extends Widget {
  constructor(q, ctx) {
    super(q, ctx);
    this.spans = [];
    this.cps = [];
    this.area = null;
    this.message = h("div", { class: "q-problem", hidden: true });
    this.repaint();
  }
  hint() { return "select text, then a number"; }
  bindField(container, value) {
    this.cps = Array.from(typeof value === "string" ? value : "");
    this.area = h("div", { class: "span-text", tabindex: "0", dataset: { field: this.q.field } });
    this.area.addEventListener("mouseup", () => { if (this.selection()) this.ctx.activate(this); });
    container.append(this.area);
    this.repaint();
  }
  get value() { return this.spans.map(({ start, end, label }) => ({ start, end, label, text: this.cps.slice(start, end).join("") })); }
  set value(v) {
    this.spans = (Array.isArray(v) ? v : [])
      .filter((s) => s && Number.isInteger(s.start) && Number.isInteger(s.end) && this.q.labels.includes(s.label))
      .map((s) => ({ start: s.start, end: s.end, label: s.label }))
      .sort((a, b) => a.start - b.start || a.end - b.end);
    this.repaint();
  }
  answered() { return true; } // no spans is an answer: "nothing to mark"
  // The current selection inside this widget's text, in code points; null if there is none.
  selection() {
    const sel = window.getSelection();
    if (!this.area || !sel || sel.rangeCount === 0 || sel.isCollapsed) return null;
    const range = sel.getRangeAt(0);
    if (!this.area.contains(range.startContainer) || !this.area.contains(range.endContainer)) return null;
    const before = document.createRange();
    before.selectNodeContents(this.area);
    before.setEnd(range.startContainer, range.startOffset);
    const full = this.cps.join("");
    const u16start = before.toString().length;
    const u16end = u16start + range.toString().length;
    let start = Array.from(full.slice(0, u16start)).length;
    let end = Array.from(full.slice(0, u16end)).length;
    while (start < end && /\s/.test(this.cps[start])) start++;
    while (end > start && /\s/.test(this.cps[end - 1])) end--;
    return end > start ? { start, end } : null;
  }
  addFromSelection(labelIndex) {
    if (!this.editable || labelIndex < 0 || labelIndex >= this.q.labels.length) return false;
    const picked = this.selection();
    if (!picked) { this.say("Select some text first, then press the label's number."); return true; }
    const label = this.q.labels[labelIndex];
    if (this.spans.some((s) => s.start === picked.start && s.end === picked.end && s.label === label)) return true;
    if (!this.q.allow_overlap && this.spans.some((s) => picked.start < s.end && s.start < picked.end)) {
      this.say("Spans may not overlap in this project: delete the other span first.");
      return true;
    }
    this.spans.push({ ...picked, label });
    this.spans.sort((a, b) => a.start - b.start || a.end - b.end);
    window.getSelection().removeAllRanges();
    this.say("");
    this.changed();
    return true;
  }
  remove(index) { if (this.editable) { this.spans.splice(index, 1); this.changed(); } }
  say(text) { this.message.textContent = text; this.message.hidden = !text; }
  key(e) {
    if (e.key === "Backspace" || e.key === "Delete") {
      if (this.spans.length && this.editable) { this.spans.pop(); this.changed(); }
      return true;
    }
    const i = indexForKey(e.key);
    return i >= 0 ? this.addFromSelection(i) : false;
  }
  repaint() {
    const labelIndex = (label) => this.q.labels.indexOf(label);
    const list = h("ul", { class: "item-list" }, this.spans.map((s, i) => h("li", { class: colorClass(labelIndex(s.label)) },
      h("span", { class: "swatch" }), h("strong", {}, s.label), h("span", { class: "what" }, `“${this.cps.slice(s.start, s.end).join("")}”`),
      this.editable ? h("button", { type: "button", class: "x", title: "delete", "aria-label": "delete span", onclick: () => this.remove(i) }, "×") : null)));
    this.body.replaceChildren(
      h("div", { class: "options" }, this.q.labels.map((label, i) => h("span", { class: `opt ${colorClass(i)}` },
        keyFor(i) ? kbd(keyFor(i)) : null, h("span", { class: "opt-swatch" }), label))),
      this.spans.length ? list : h("div", { class: "muted small" }, "No spans yet."), this.message);
    if (!this.area) return;
    // Paint the text: segments between span boundaries, each covered segment in a <mark>.
    const cuts = new Set([0, this.cps.length]);
    for (const s of this.spans) { cuts.add(s.start); cuts.add(s.end); }
    const points = [...cuts].sort((a, b) => a - b);
    const nodes = [];
    for (let k = 0; k + 1 < points.length; k++) {
      const [a, b] = [points[k], points[k + 1]];
      const text = this.cps.slice(a, b).join("");
      const covering = this.spans.filter((s) => s.start <= a && b <= s.end);
      if (!covering.length) { nodes.push(document.createTextNode(text)); continue; }
      const top = covering[covering.length - 1];
      const ends = covering.find((s) => s.end === b);
      nodes.push(h("mark", { class: colorClass(labelIndex(top.label)), dataset: ends ? { label: ends.label } : {} }, text));
    }
    this.area.replaceChildren(...nodes);
  }
}

// ------------------------------------------------------------------ boxes on an image

const MIN_BOX = 0.004;

class BboxWidget extends Widget {
  constructor(q, ctx) {
    super(q, ctx);
    this.boxes = [];
    this.current = 0; // label index for new boxes
    this.selected = -1;
    this.layer = null;
    this.repaint();
  }
  hint() { return "drag to draw · number = label · Del"; }
  bindField(container, value) {
    const src = this.ctx.imageUrl ? this.ctx.imageUrl(value) : null;
    if (!src) { container.append(h("div", { class: "image-missing" }, "This image cannot be shown here: ", String(value))); return; }
    const img = h("img", { src, alt: "", draggable: "false" });
    img.addEventListener("error", () => stage.replaceWith(h("div", { class: "image-missing" },
      "The image did not load. Pictures from other sites are blocked by this server's security policy; ask your manager to import them as files or data: URLs.")));
    this.layer = h("div", { class: "bbox-layer", "aria-label": "draw boxes here" });
    const stage = h("div", { class: "bbox-stage" }, img, this.layer);
    container.append(stage);
    this.attachPointer();
    this.repaint();
  }
  point(e) {
    const r = this.layer.getBoundingClientRect();
    return { x: Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), y: Math.min(1, Math.max(0, (e.clientY - r.top) / r.height)) };
  }
  attachPointer() {
    let drag = null;
    this.layer.addEventListener("pointerdown", (e) => {
      if (!this.editable || e.button !== 0) return;
      e.preventDefault();
      this.ctx.activate(this);
      const p = this.point(e);
      const handle = e.target.closest(".bbox-handle");
      const boxEl = e.target.closest(".bbox");
      if (e.target.closest(".bbox-x")) return;
      if (boxEl) {
        const i = Number(boxEl.dataset.index);
        this.selected = i;
        drag = { mode: handle ? handle.dataset.corner : "move", start: p, orig: { ...this.boxes[i] }, index: i };
      } else {
        this.boxes.push({ x: p.x, y: p.y, w: 0, h: 0, label: this.q.labels[this.current] });
        this.selected = this.boxes.length - 1;
        drag = { mode: "draw", start: p, index: this.selected };
      }
      this.layer.setPointerCapture(e.pointerId);
      this.repaint();
    });
    this.layer.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const p = this.point(e);
      const b = this.boxes[drag.index];
      if (drag.mode === "draw") {
        b.x = Math.min(p.x, drag.start.x); b.y = Math.min(p.y, drag.start.y);
        b.w = Math.abs(p.x - drag.start.x); b.h = Math.abs(p.y - drag.start.y);
      } else if (drag.mode === "move") {
        const o = drag.orig;
        b.x = Math.min(1 - o.w, Math.max(0, o.x + p.x - drag.start.x));
        b.y = Math.min(1 - o.h, Math.max(0, o.y + p.y - drag.start.y));
      } else {
        const o = drag.orig;
        let [x1, y1, x2, y2] = [o.x, o.y, o.x + o.w, o.y + o.h];
        if (drag.mode.includes("w")) x1 = p.x; else x2 = p.x;
        if (drag.mode.includes("n")) y1 = p.y; else y2 = p.y;
        b.x = Math.min(x1, x2); b.y = Math.min(y1, y2); b.w = Math.abs(x2 - x1); b.h = Math.abs(y2 - y1);
      }
      this.paintBoxes();
    });
    const finish = () => {
      if (!drag) return;
      const b = this.boxes[drag.index];
      if (b && (b.w < MIN_BOX || b.h < MIN_BOX)) {
        if (drag.mode === "draw") { this.boxes.splice(drag.index, 1); this.selected = -1; } else { Object.assign(b, drag.orig); }
      }
      drag = null;
      this.changed();
    };
    this.layer.addEventListener("pointerup", finish);
    this.layer.addEventListener("pointercancel", finish);
  }
  get value() {
    const r = (v) => Math.round(v * 1e6) / 1e6;
    return this.boxes.map((b) => ({ x: r(b.x), y: r(b.y), w: r(Math.min(b.w, 1 - b.x)), h: r(Math.min(b.h, 1 - b.y)), label: b.label }));
  }
  set value(v) {
    this.boxes = (Array.isArray(v) ? v : []).filter((b) => b && this.q.labels.includes(b.label))
      .map((b) => ({ x: +b.x, y: +b.y, w: +b.w, h: +b.h, label: b.label }));
    this.selected = -1;
    this.repaint();
  }
  answered() { return true; }
  remove(i) { if (this.editable && i >= 0) { this.boxes.splice(i, 1); this.selected = -1; this.changed(); } }
  key(e) {
    if (!this.editable) return false;
    if ((e.key === "Delete" || e.key === "Backspace") && this.selected >= 0) { this.remove(this.selected); return true; }
    if (e.key === "Escape" && this.selected >= 0) { this.selected = -1; this.repaint(); return true; }
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (arrows[e.key] && this.selected >= 0) {
      const [dx, dy] = arrows[e.key].map((d) => d * 0.005);
      const b = this.boxes[this.selected];
      if (e.shiftKey) { b.w = Math.max(MIN_BOX, Math.min(1 - b.x, b.w + dx)); b.h = Math.max(MIN_BOX, Math.min(1 - b.y, b.h + dy)); }
      else { b.x = Math.min(1 - b.w, Math.max(0, b.x + dx)); b.y = Math.min(1 - b.h, Math.max(0, b.y + dy)); }
      this.changed();
      return true;
    }
    const i = indexForKey(e.key);
    if (i >= 0 && i < this.q.labels.length) {
      this.current = i;
      if (this.selected >= 0) this.boxes[this.selected].label = this.q.labels[i];
      this.changed();
      return true;
    }
    return false;
  }
  paintBoxes() {
    if (!this.layer) return;
    const nodes = this.boxes.map((b, i) => {
      const el = h("div", { class: `bbox ${colorClass(this.q.labels.indexOf(b.label))}${i === this.selected ? " selected" : ""}`, dataset: { index: String(i) } },
        h("span", { class: "bbox-tag" }, b.label),
        ["nw", "ne", "sw", "se"].map((c) => h("span", { class: `bbox-handle ${c}`, dataset: { corner: c } })));
      el.style.left = `${b.x * 100}%`;
      el.style.top = `${b.y * 100}%`;
      el.style.width = `${b.w * 100}%`;
      el.style.height = `${b.h * 100}%`;
      return el;
    });
    this.layer.replaceChildren(...nodes);
  }
  repaint() {
    const f = (v) => v.toFixed(2).replace(/^0/, "");
    this.body.replaceChildren(
      h("div", { class: "options" }, this.q.labels.map((label, i) => optionButton(label, i, i === this.current, () => {
        this.current = i;
        if (this.selected >= 0) this.boxes[this.selected].label = label;
        this.changed();
      }))),
      this.boxes.length
        ? h("ul", { class: "item-list" }, this.boxes.map((b, i) => h("li", {
          class: `${colorClass(this.q.labels.indexOf(b.label))}${i === this.selected ? " selected" : ""}`,
          onclick: () => { this.selected = i; this.repaint(); },
        }, h("span", { class: "swatch" }), h("strong", {}, b.label),
        h("span", { class: "what muted" }, `x ${f(b.x)} y ${f(b.y)} · ${f(b.w)}×${f(b.h)}`),
        this.editable ? h("button", { type: "button", class: "x", title: "delete", "aria-label": "delete box", onclick: (ev) => { ev.stopPropagation(); this.remove(i); } }, "×") : null)))
        : h("div", { class: "muted small" }, "No boxes yet: drag on the picture."));
    this.paintBoxes();
  }
}

const WIDGETS = {
  label: LabelWidget,
  multi_label: MultiLabelWidget,
  rating: RatingWidget,
  ranking: RankingWidget,
  preference: PreferenceWidget,
  text: TextWidget,
  span: SpanWidget,
  bbox: BboxWidget,
};

export function makeWidget(question, ctx) {
  const Kind = WIDGETS[question.type];
  return Kind ? new Kind(question, ctx) : null;
}

// A short, plain description of a value, for review tables and feedback.
export function describe(question, value, payload) {
  if (value === undefined || value === null) return "—";
  switch (question.type) {
    case "label": return String(value);
    case "multi_label": return value.length ? value.join(", ") : "(none)";
    case "rating": return `${value} of ${question.min}–${question.max}`;
    case "ranking": return value.map((i) => i + 1).join(" › ");
    case "preference": {
      const side = { a: "A better", b: "B better", tie: "tie" }[value.choice] || String(value.choice);
      return value.strength ? `${side} (strength ${value.strength})` : side;
    }
    case "text": return value;
    case "span": {
      const cps = Array.from(String((payload || {})[question.field] ?? ""));
      const text = (s) => s.text ?? cps.slice(s.start, s.end).join("");
      return value.length ? value.map((s) => `${s.label}: “${text(s)}”`).join("\n") : "(no spans)";
    }
    case "bbox": return value.length ? value.map((b) => b.label).join(", ") + ` (${value.length} box${value.length === 1 ? "" : "es"})` : "(no boxes)";
    default: return JSON.stringify(value);
  }
}
