// Small DOM and HTTP helpers. Text always goes in as text (never as HTML).

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function kbd(text) {
  return h("kbd", {}, text);
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// fetch() against this server: JSON both ways, session cookie, CSRF token in a header.
export async function api(method, url, body) {
  const options = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
  };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    return { ok: false, status: 0, data: null, error: { code: "network", message: "the server cannot be reached; check your connection" } };
  }
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch (err) { data = null; }
  }
  if (response.status === 401) {
    // The session ended: log in again and come back here.
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
  }
  const error = response.ok ? null : (data && data.error) || { code: "http_" + response.status, message: response.statusText };
  return { ok: response.ok, status: response.status, data, error };
}

export function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function isTyping(event) {
  const t = event.target;
  if (!(t instanceof HTMLElement)) return false;
  return t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName);
}

let toastTimer = null;
export function toast(text, kind = "") {
  const node = document.getElementById("toast");
  if (!node) return;
  node.textContent = text;
  node.className = "toast " + kind;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, kind === "bad" ? 5000 : 1800);
}

export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  const rest = String(s % 60).padStart(2, "0");
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

// Label colours cycle through ten classes (.l1 … .l10) defined in the stylesheet.
export function colorClass(index) {
  return "l" + ((index % 10) + 1);
}

// The key that selects option i (0-based): 1…9, then 0 for the 10th.
export function keyFor(index) {
  if (index < 9) return String(index + 1);
  if (index === 9) return "0";
  return null;
}

export function indexForKey(key) {
  if (!/^[0-9]$/.test(key)) return -1;
  return key === "0" ? 9 : Number(key) - 1;
}
