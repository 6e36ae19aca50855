// The review screen: the next task awaiting review with its answers side by side; accept,
// reject some answers with a reason (the task goes back to the queue), or correct.

import { h, api, isTyping, toast, clock } from "./dom.js";
import { buildTaskView } from "./taskview.js";
import { describe } from "./widgets.js";

const root = document.getElementById("workspace");
const config = JSON.parse(root.dataset.config);
const base = `/api/projects/${config.project_id}`;
const $ = (id) => document.getElementById(id);

const state = { item: null, view: null, selected: 0, mode: "view", busy: false, done: 0, shownAt: 0 };

function setMode(mode) {
  state.mode = mode;
  $("reject-form").hidden = mode !== "reject";
  $("correct-actions").hidden = mode !== "correct";
  $("questions").hidden = mode !== "correct";
  $("decide").hidden = mode !== "view";
  $("problems").hidden = true;
  if (state.view) {
    state.view.setEditable(mode === "correct");
    if (mode === "correct") state.view.activate(0);
  }
}

async function next() {
  const res = await api("POST", `${base}/reviews/next`);
  if (res.ok) return show(res.data);
  $("ws-body").hidden = true;
  $("empty").hidden = false;
  state.item = null;
  if (res.error.code === "queue_refused") {
    $("empty-title").textContent = "Nothing awaits review";
    $("empty-text").textContent = "Every completed task that needs review has a decision. New ones arrive as labelers finish tasks.";
    $("pending").textContent = "0";
  } else {
    $("empty-title").textContent = res.status === 403 ? "You cannot review here" : "Could not load";
    $("empty-text").textContent = res.error.message;
  }
}

async function show(item) {
  $("empty").hidden = true;
  $("ws-body").hidden = false;
  state.item = item;
  state.shownAt = Date.now();
  state.view = await buildTaskView({ taskEl: $("task"), questionsEl: $("questions"), schema: config.schema, data: item.data, projectId: config.project_id, editable: false });
  root.dataset.taskId = String(item.task_id);
  renderAnswers();
  select(0);
  setMode("view");
  $("task").scrollTop = 0;
}

function renderAnswers() {
  const { answers, data } = state.item;
  const steps = state.view.steps;
  const head = h("tr", {}, h("th", {}, ""), answers.map((a, i) => h("th", {
    dataset: { answer: String(i) }, onclick: () => select(i), title: "show this answer on the task",
  }, h("kbd", {}, String(i + 1)), " ", a.labeler || `labeler ${a.labeler_id}`, h("div", { class: "muted small" }, clock(a.time_spent_ms)))));
  const rows = steps.map((step) => {
    const values = answers.map((a) => state.view.valueAt(a.value, step));
    const differs = new Set(values.map((v) => JSON.stringify(v ?? null))).size > 1;
    return h("tr", {}, h("td", { class: "qname" }, step.path.join(" › ")),
      values.map((v, i) => h("td", { class: `value${differs ? " differs" : ""}`, dataset: { answer: String(i) } }, describe(step.question, v, data))));
  });
  $("answers").replaceChildren(h("table", { class: "answers-table" }, h("thead", {}, head), h("tbody", {}, rows)));
  $("reject-choices").replaceChildren(...answers.map((a) => h("label", {},
    h("input", { type: "checkbox", value: String(a.answer_id), checked: true }), a.labeler || `labeler ${a.labeler_id}`)));
}

function select(i) {
  const answers = state.item ? state.item.answers : [];
  if (i < 0 || i >= answers.length) return;
  state.selected = i;
  state.view.setAnswer(answers[i].value);
  for (const cell of $("answers").querySelectorAll("[data-answer]")) cell.classList.toggle("selected", cell.dataset.answer === String(i));
}

async function decide(body) {
  if (!state.item || state.busy) return;
  state.busy = true;
  const res = await api("POST", `${base}/reviews/${state.item.task_id}`, body);
  state.busy = false;
  if (!res.ok) {
    const box = $("problems");
    const details = Array.isArray(res.error.details) ? res.error.details : [];
    if (state.mode === "correct") state.view.showProblems(details);
    box.replaceChildren(h("strong", {}, res.error.message));
    box.hidden = false;
    return;
  }
  state.done += 1;
  $("done-count").textContent = String(state.done);
  $("pending").textContent = String(Math.max(0, Number($("pending").textContent) - 1));
  toast({ accept: "Accepted", reject: "Rejected: back to the queue", correct: "Correction saved" }[body.decision]);
  next();
}

function accept() { decide({ decision: "accept" }); }

function openReject() {
  setMode("reject");
  $("reject-reason").value = "";
  $("reject-reason").focus();
}

function sendReject() {
  const reason = $("reject-reason").value.trim();
  const ids = [...$("reject-choices").querySelectorAll("input:checked")].map((x) => Number(x.value));
  if (!reason) { toast("Write a reason: the labeler reads it", "bad"); $("reject-reason").focus(); return; }
  if (!ids.length) { toast("Choose at least one answer to reject", "bad"); return; }
  decide({ decision: "reject", reason, answer_ids: ids });
}

function openCorrect() { setMode("correct"); }

function saveCorrection() {
  const problems = state.view.validate();
  if (problems.length) { state.view.showProblems(problems); return; }
  decide({ decision: "correct", answer: state.view.collect() });
}

document.addEventListener("keydown", (e) => {
  if (state.mode === "reject") {
    if (e.key === "Escape") { e.preventDefault(); setMode("view"); }
    else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendReject(); }
    return;
  }
  if (isTyping(e)) {
    if (e.key === "Escape") { e.target.blur(); e.preventDefault(); }
    else if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && state.mode === "correct") { e.preventDefault(); saveCorrection(); }
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (!state.item) {
    if (e.key === "r" || e.key === "R") { e.preventDefault(); next(); }
    return;
  }
  if (state.mode === "correct") {
    if (e.key === "Escape") { e.preventDefault(); setMode("view"); select(state.selected); return; }
    if (e.key === "Enter") { e.preventDefault(); saveCorrection(); return; }
    if (state.view.handleKey(e)) e.preventDefault();
    return;
  }
  const k = e.key.toLowerCase();
  if (/^[1-9]$/.test(e.key)) { e.preventDefault(); select(Number(e.key) - 1); }
  else if (k === "a") { e.preventDefault(); accept(); }
  else if (k === "r") { e.preventDefault(); openReject(); }
  else if (k === "c") { e.preventDefault(); openCorrect(); }
  else if (k === "g") { e.preventDefault(); const g = $("guidelines"); g.open = !g.open; }
});

$("accept").addEventListener("click", accept);
$("reject").addEventListener("click", openReject);
$("correct").addEventListener("click", openCorrect);
$("save-correction").addEventListener("click", saveCorrection);
$("reject-form").addEventListener("submit", (e) => { e.preventDefault(); sendReject(); });
for (const b of document.querySelectorAll("[data-cancel]")) b.addEventListener("click", () => { setMode("view"); select(state.selected); });
$("retry").addEventListener("click", next);
$("guidelines-toggle").addEventListener("click", () => { const g = $("guidelines"); g.open = !g.open; });
setInterval(() => { if (state.item) $("timer").textContent = clock(Date.now() - state.shownAt); }, 500);
next();
