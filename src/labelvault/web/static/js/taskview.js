// A task on screen: its fields (as text, never as HTML, except markdown sanitised by the server)
// and one card per question. Questions are "steps" (a rubric's criteria are steps of their own);
// one step is active at a time and gets the number keys.

import { h, api, colorClass, indexForKey } from "./dom.js";
import { makeWidget, candidatesOf } from "./widgets.js";

const BOUND_TYPES = new Set(["span", "bbox", "ranking", "preference"]);

// Where an image field's value is loaded from: data: URLs and this server's paths as they are,
// uploaded files ("file:<id>") from the project's file endpoint (with the session), other sites as
// given (the Content-Security-Policy blocks them, and the page says so).
export function imageUrl(src, projectId) {
  if (typeof src !== "string") return null;
  const file = /^file:([A-Za-z0-9_.-]+)$/.exec(src);
  if (file && projectId) return `/api/projects/${projectId}/files/${encodeURIComponent(file[1])}`;
  return /^data:image\//i.test(src) || /^https?:\/\//i.test(src) || (src.startsWith("/") && !src.startsWith("//")) ? src : null;
}

function renderChat(messages) {
  return h("div", { class: "chat" }, (Array.isArray(messages) ? messages : []).map((m) =>
    h("div", { class: `msg msg-${["system", "user", "assistant", "tool"].includes(m.role) ? m.role : "other"}` },
      h("span", { class: "msg-role" }, String(m.role ?? "")), String(m.content ?? ""))));
}

function renderCandidates(value) {
  return h("div", { class: "candidates" }, candidatesOf(value).map((c, i) => h("div", { class: "candidate" },
    h("div", { class: "candidate-head" }, `Candidate ${i + 1}`, c.model ? h("span", { class: "model" }, c.model) : null), c.text)));
}

export async function buildTaskView({ taskEl, questionsEl, schema, data, projectId, editable = true, onChange = () => {} }) {
  const steps = [];
  const view = { steps, active: -1, editable };
  const ctx = {
    editable,
    imageUrl: (src) => imageUrl(src, projectId),
    changed: (widget) => { clearProblem(widget); onChange(); },
    advance: (widget) => {
      const i = steps.findIndex((s) => s.widget === widget);
      const next = steps.findIndex((s, k) => k > i && !s.widget.answered());
      if (next >= 0) view.activate(next);
    },
    activate: (widget) => {
      const i = steps.findIndex((s) => s.widget === widget);
      if (i >= 0 && i !== view.active) view.activate(i);
    },
  };

  function clearProblem(widget) {
    const step = steps.find((s) => s.widget === widget);
    if (step) { step.card.classList.remove("invalid"); step.problem.hidden = true; }
  }

  function card(question, path, widget, nested) {
    const title = question.title || question.name;
    const problem = h("div", { class: "q-problem", hidden: true });
    const node = h("section", { class: "q", dataset: { question: path.join("."), type: question.type } },
      h("div", { class: "q-head" }, h("span", { class: "q-title" }, title),
        question.required === false ? h("span", { class: "muted small" }, "optional") : h("span", { class: "q-req", title: "required" }, "*"),
        h("span", { class: "q-hint" }, widget.hint())),
      question.help ? h("div", { class: "q-help" }, question.help) : null,
      widget.render(), problem);
    node.addEventListener("mousedown", () => ctx.activate(widget));
    steps.push({ path, question, widget, card: node, problem, nested });
    return node;
  }

  // Widgets and cards, in schema order.
  const cards = [];
  for (const question of schema.questions) {
    if (question.type === "rubric") {
      const inner = question.criteria.map((c) => {
        const widget = makeWidget(c, ctx);
        return widget ? card(c, [question.name, c.name], widget, question) : null;
      });
      cards.push(h("section", { class: "q rubric", dataset: { question: question.name, type: "rubric" } },
        h("div", { class: "q-head" }, h("span", { class: "q-title" }, question.title || question.name),
          h("span", { class: "q-hint" }, `${question.criteria.length} criteria`)),
        question.help ? h("div", { class: "q-help" }, question.help) : null,
        h("div", { class: "q-criteria" }, inner)));
    } else {
      const widget = makeWidget(question, ctx);
      if (widget) cards.push(card(question, [question.name], widget, null));
    }
  }
  questionsEl.replaceChildren(...cards);

  // Fields. A field that a span, box, ranking or preference question works on is drawn by that
  // question's widget (so the labeler works right on the text, the picture or the candidates).
  const markdownJobs = [];
  const sections = [];
  for (const field of schema.fields) {
    const value = data[field.name];
    if (value === undefined || value === null) continue;
    const section = h("section", { class: `field field-${field.kind}`, dataset: { field: field.name } },
      h("h3", { class: "field-title" }, field.title || field.name));
    const binders = steps.filter((s) => BOUND_TYPES.has(s.question.type) && s.question.field === field.name);
    if (binders.length) {
      for (const step of binders) {
        if (binders.length > 1) section.append(h("div", { class: "muted small" }, step.question.title || step.question.name));
        step.widget.bindField(section, value);
      }
    } else if (field.kind === "markdown") {
      const target = h("div", { class: "markdown" }, h("div", { class: "text-block" }, String(value)));
      markdownJobs.push([target, String(value)]);
      section.append(target);
    } else if (field.kind === "image") {
      const src = imageUrl(value, projectId);
      section.classList.add("image-field");
      section.append(src ? h("img", { src, alt: field.title || field.name }) : h("div", { class: "image-missing" }, "This image cannot be shown: ", String(value)));
    } else if (field.kind === "chat") {
      section.append(renderChat(value));
    } else if (field.kind === "candidates") {
      section.append(renderCandidates(value));
    } else {
      section.append(h("div", { class: "text-block" }, typeof value === "string" ? value : JSON.stringify(value, null, 2)));
    }
    sections.push(section);
  }
  taskEl.replaceChildren(h("div", { class: "task-paper" }, sections));
  if (markdownJobs.length) {
    // Rendered and sanitised on the server (markdown-it with HTML off, then nh3); shown as text until then.
    const res = await api("POST", "/render/markdown", { texts: markdownJobs.map(([, text]) => text) });
    if (res.ok) markdownJobs.forEach(([target], i) => { target.innerHTML = res.data.html[i]; });
  }

  view.activate = (i) => {
    if (i < 0 || i >= steps.length) return;
    if (view.active >= 0 && steps[view.active]) {
      steps[view.active].card.classList.remove("active");
      steps[view.active].widget.onDeactivate();
    }
    view.active = i;
    const step = steps[i];
    step.card.classList.add("active");
    step.card.scrollIntoView({ block: "nearest" });
    if (view.editable) step.widget.onActivate();
  };

  view.collect = () => {
    const answer = {};
    for (const step of steps) {
      const value = step.widget.value;
      if (value === undefined) continue;
      if (step.path.length === 2) {
        const [rubric, criterion] = step.path;
        (answer[rubric] ||= {})[criterion] = value;
      } else {
        answer[step.path[0]] = value;
      }
    }
    return answer;
  };

  view.setAnswer = (answer) => {
    for (const step of steps) {
      const [a, b] = step.path;
      const value = answer ? (b === undefined ? answer[a] : (answer[a] || {})[b]) : undefined;
      step.widget.value = value;
    }
    for (const step of steps) clearProblem(step.widget);
  };

  view.valueAt = (answer, step) => {
    const [a, b] = step.path;
    if (!answer) return undefined;
    return b === undefined ? answer[a] : (answer[a] || {})[b];
  };

  // Problems the browser can see before sending (the server checks everything again).
  view.validate = () => {
    const problems = [];
    const answered = new Set(steps.filter((s) => s.widget.value !== undefined && s.nested).map((s) => s.nested.name));
    for (const step of steps) {
      const q = step.question;
      const value = step.widget.value;
      const needed = q.required !== false && (!step.nested || step.nested.required !== false || answered.has(step.nested.name));
      if (value === undefined) {
        if (needed) problems.push({ question: step.path.join("."), message: "an answer is required" });
        continue;
      }
      if (q.type === "text") {
        const n = Array.from(value).length;
        if (q.min_length && n < q.min_length && (n > 0 || needed)) problems.push({ question: step.path.join("."), message: `at least ${q.min_length} characters (now ${n})` });
        if (q.max_length && n > q.max_length) problems.push({ question: step.path.join("."), message: `at most ${q.max_length} characters (now ${n})` });
      }
      if (q.type === "multi_label") {
        if (q.min_selected && value.length < q.min_selected) problems.push({ question: step.path.join("."), message: `pick at least ${q.min_selected}` });
        if (q.max_selected && value.length > q.max_selected) problems.push({ question: step.path.join("."), message: `pick at most ${q.max_selected}` });
      }
    }
    return problems;
  };

  view.showProblems = (problems) => {
    let first = -1;
    for (const p of problems || []) {
      const i = steps.findIndex((s) => s.path.join(".") === p.question);
      if (i < 0) continue;
      steps[i].card.classList.add("invalid");
      steps[i].problem.textContent = p.message;
      steps[i].problem.hidden = false;
      if (first < 0) first = i;
    }
    if (first >= 0) view.activate(first);
    return first >= 0;
  };

  view.setEditable = (on) => {
    view.editable = on;
    ctx.editable = on;
    for (const step of steps) step.widget.setEditable(on);
  };

  // Number keys with a text selection go to the span question of that text, whatever is active.
  view.handleKey = (e) => {
    if (!view.editable || e.ctrlKey || e.metaKey || e.altKey) return false;
    const index = indexForKey(e.key);
    if (index >= 0) {
      const spanStep = steps.find((s) => s.question.type === "span" && s.widget.selection && s.widget.selection());
      if (spanStep) {
        view.activate(steps.indexOf(spanStep));
        return spanStep.widget.addFromSelection(index);
      }
    }
    const step = steps[view.active];
    if (step && step.widget.key(e)) return true;
    if (e.key === "ArrowDown") { view.activate(Math.min(steps.length - 1, view.active + 1)); return true; }
    if (e.key === "ArrowUp") { view.activate(Math.max(0, view.active - 1)); return true; }
    return false;
  };

  view.colorClass = colorClass;
  return view;
}
