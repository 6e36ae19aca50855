// The labeling screen: lease the next task, answer with keys or mouse, submit, repeat; without
// reloading the page. Talks to the JSON API with the session cookie and the CSRF header.

import { h, api, isTyping, toast, clock, randomId } from "./dom.js";
import { buildTaskView } from "./taskview.js";
import { describe } from "./widgets.js";

const root = document.getElementById("workspace");
const config = JSON.parse(root.dataset.config);
const base = `/api/projects/${config.project_id}`;
const $ = (id) => document.getElementById(id);

const REFUSALS = {
  no_tasks: ["✓", "No tasks left for you", "You have answered, skipped or hold every task you may get in this project. New tasks appear when the manager imports more or when a task comes back from review.", ""],
  budget_reached: ["$", "The budget is reached", "This project has spent its budget, so the queue is closed until the manager raises it.", "is-warn"],
  conflict_of_interest: ["✕", "Not available to you: conflict of interest", "You have worked with data of a competitor of this client, so you may not see this client's data. Ask an operator if you think this is wrong.", "is-bad"],
  project_inactive: ["‖", "This project is paused", "The manager has paused or archived this project. Try again later.", "is-warn"],
  not_qualified: ["?", "Qualification needed", "This project needs a passed qualification test (or a skill you do not have yet). Ask your manager.", "is-warn"],
  suspended: ["‖", "You are suspended from this project", "Your answers on the check tasks fell below the project's quality bar. Your manager can tell you more.", "is-bad"],
  not_a_labeler: ["✕", "You are not a labeler here", "Your role in this client does not include labeling. Ask your manager for the labeler role.", "is-bad"],
};

const state = { task: null, view: null, shownAt: 0, leaseMs: 0, idem: null, busy: false, done: 0, feedbackSeen: null, suggestion: null };

function showEmpty(reason, message) {
  const [icon, title, text, kind] = REFUSALS[reason] || ["!", "No task", message || "", "is-warn"];
  $("ws-body").hidden = true;
  const empty = $("empty");
  empty.hidden = false;
  empty.className = `empty-state ${kind}`;
  empty.dataset.reason = reason;
  $("empty-icon").textContent = icon;
  $("empty-title").textContent = title;
  $("empty-text").textContent = text;
  $("empty-reason").textContent = message ? `${reason} · ${message}` : reason;
  state.task = null;
}

async function next() {
  state.busy = true;
  $("problems").hidden = true;
  const res = await api("POST", `${base}/tasks/next`);
  state.busy = false;
  present(res.ok ? res.data : null, res.error, res.status);
}

// What a next answered: a task, or the error saying why there is none (from tasks/next, or the
// next_task / next_error of a submit that asked for the next task too).
function present(task, error, status) {
  if (task) return show(task);
  if (error.code === "queue_refused") return showEmpty(error.details.reason, error.message);
  if (status === 403) return showEmpty(error.code === "conflict_of_interest" ? "conflict_of_interest" : "not_a_labeler", error.message);
  showEmpty(error.code, error.message);
}

async function show(task) {
  $("empty").hidden = true;
  $("ws-body").hidden = false;
  state.task = task;
  state.idem = randomId();
  state.shownAt = Date.now();
  state.leaseMs = Date.parse(task.lease_expires_at) - Date.parse(task.lease_started_at);
  state.view = await buildTaskView({ taskEl: $("task"), questionsEl: $("questions"), schema: config.schema, data: task.data, projectId: config.project_id });
  prefill(task.suggestions || []);
  state.view.activate(0);
  $("task").scrollTop = 0;
  root.dataset.taskId = String(task.task_id);
}

// Model suggestions pre-fill the answer (the best-scored one); the labeler checks and corrects.
function prefill(suggestions) {
  const note = $("suggestion-note");
  const best = [...suggestions].filter((s) => s && s.answer).sort((a, b) => (b.score ?? 0) - (a.score ?? 0))[0];
  state.suggestion = best || null;
  if (!best) { note.hidden = true; return; }
  state.view.setAnswer(best.answer);
  note.replaceChildren(h("span", {}, "Pre-filled by ", h("strong", {}, best.model || "a model"),
    best.score !== undefined && best.score !== null ? ` (score ${Number(best.score).toFixed(2)})` : "", ": check it."),
  h("button", { type: "button", class: "btn btn-small btn-ghost", onclick: clearSuggestion }, "Clear ", h("kbd", {}, "C")));
  note.hidden = false;
}

function clearSuggestion() {
  if (!state.view || !state.suggestion) return;
  state.view.setAnswer(null);
  $("suggestion-note").hidden = true;
  state.suggestion = null;
  state.view.activate(0);
}

function showProblems(problems, message) {
  const box = $("problems");
  const placed = state.view.showProblems(problems);
  box.replaceChildren(h("strong", {}, message || "Please fix:"),
    h("ul", {}, problems.map((p) => h("li", {}, p.question ? `${p.question}: ${p.message}` : p.message))));
  box.hidden = false;
  return placed;
}

async function submit() {
  if (!state.task || state.busy) return;
  const problems = state.view.validate();
  if (problems.length) { showProblems(problems); return; }
  state.busy = true;
  $("submit").disabled = true;
  const task = state.task;
  // The next task comes back with the answer's receipt: one request per task.
  const res = await api("POST", `${base}/tasks/${task.task_id}/answers?next=true`, { answer: state.view.collect(), idempotency_key: state.idem });
  state.busy = false;
  $("submit").disabled = false;
  if (res.ok) {
    state.done += 1;
    $("done-count").textContent = String(state.done);
    toast(`Saved · ${clock(res.data.time_spent_ms)}`);
    refreshFeedback();
    $("problems").hidden = true;
    const refused = res.data.next_error;
    return present(res.data.next_task, refused, refused && refused.status);
  }
  if (res.error.code === "answer_invalid") {
    showProblems(Array.isArray(res.error.details) ? res.error.details : [], "The server did not accept this answer:");
    return;
  }
  toast(res.error.message, "bad");
  if (res.status === 409) next();
}

async function skip(reason) {
  if (!state.task || state.busy) return;
  state.busy = true;
  const res = await api("POST", `${base}/tasks/${state.task.task_id}/skip`, { reason });
  state.busy = false;
  closeSkip();
  if (!res.ok) toast(res.error.message, "bad");
  else toast("Skipped");
  next();
}

function openSkip() {
  if (!state.task) return;
  $("skip-form").hidden = false;
  $("skip-reason").value = "";
  $("skip-reason").focus();
}

function closeSkip() {
  $("skip-form").hidden = true;
}

// An answer in words, question by question ("sentiment: neutral · topics: sport, money").
function summarize(answer) {
  const parts = [];
  for (const q of config.schema.questions) {
    const value = (answer || {})[q.name];
    if (value === undefined) continue;
    if (q.type === "rubric") {
      for (const c of q.criteria) if (value[c.name] !== undefined) parts.push(`${q.name}.${c.name}: ${describe(c, value[c.name], {})}`);
    } else {
      parts.push(`${q.name}: ${describe(q, value, {})}`);
    }
  }
  return parts.join(" · ").slice(0, 400);
}

async function refreshFeedback() {
  const res = await api("GET", `${base}/feedback?limit=50`);
  if (!res.ok) return;
  const items = res.data.items;
  $("feedback-count").textContent = String(res.data.total);
  const list = $("feedback-list");
  list.replaceChildren(...items.map((item) => h("li", { dataset: { task: String(item.task_id) } },
    h("div", { class: "reason" }, item.reason || "(no reason given)"),
    h("div", { class: "muted small" }, `task ${item.task_id}${item.reviewed_at ? " · " + new Date(item.reviewed_at).toLocaleString() : ""}`),
    h("div", { class: "value" }, "your answer: ", summarize(item.value)))));
  if (!items.length) list.replaceChildren(h("li", { class: "muted" }, "Nothing returned. Well done."));
  if (state.feedbackSeen !== null && res.data.total > state.feedbackSeen) {
    toast("A reviewer returned one of your answers: see Returned", "bad");
  }
  state.feedbackSeen = res.data.total;
}

function toggle(id) {
  const node = $(id);
  if (node.tagName === "DETAILS") node.open = !node.open;
  else node.hidden = !node.hidden;
}

function tick() {
  if (!state.task) return;
  const spent = Date.now() - state.shownAt;
  $("timer").textContent = clock(spent);
  const left = state.leaseMs - spent;
  const note = $("lease-note");
  if (left < 120000) {
    note.hidden = false;
    note.className = "ws-stat warn";
    note.textContent = left > 0 ? `lease ends in ${clock(left)}` : "lease ended: submit may be refused";
  } else {
    note.hidden = true;
  }
}

document.addEventListener("keydown", (e) => {
  if (!$("skip-form").hidden) {
    if (e.key === "Escape") { e.preventDefault(); closeSkip(); }
    return; // Enter submits the skip form itself
  }
  if (isTyping(e)) {
    if (e.key === "Escape") { e.target.blur(); e.preventDefault(); }
    else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); e.target.blur(); submit(); }
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (!state.task) {
    if (e.key === "r" || e.key === "R") { e.preventDefault(); next(); }
    return;
  }
  if (e.key === "Enter") {
    // Enter always submits, also right after a click left the focus on an option button.
    e.preventDefault();
    submit();
    return;
  }
  if (state.view && state.view.handleKey(e)) { e.preventDefault(); return; }
  const k = e.key.toLowerCase();
  if (k === "s") { e.preventDefault(); openSkip(); }
  else if (k === "g") { e.preventDefault(); toggle("guidelines"); }
  else if (k === "c") { e.preventDefault(); clearSuggestion(); }
  else if (e.key === "?") { e.preventDefault(); toggle("help"); }
  else if (e.key === "Escape") { $("help").hidden = true; $("feedback-panel").hidden = true; }
});

$("submit").addEventListener("click", submit);
$("skip").addEventListener("click", openSkip);
$("skip-cancel").addEventListener("click", closeSkip);
$("skip-form").addEventListener("submit", (e) => { e.preventDefault(); skip($("skip-reason").value.trim()); });
$("retry").addEventListener("click", next);
$("guidelines-toggle").addEventListener("click", () => toggle("guidelines"));
$("help-toggle").addEventListener("click", () => toggle("help"));
$("feedback-toggle").addEventListener("click", () => toggle("feedback-panel"));
setInterval(tick, 500);
refreshFeedback();
next();
