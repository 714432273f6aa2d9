// Annotator workspace: keyboard shortcuts, live consistency checks, and submit + next pair through
// the JSON API (with an idempotency key per pair, so a retry after a network error never
// duplicates). The page works without this file as plain HTML forms.
(function () {
  "use strict";

  const ws = document.getElementById("workspace");
  if (!ws) return;
  const projectId = ws.dataset.projectId;
  const csrf = ws.dataset.csrf;
  const form = document.getElementById("annotation-form");
  const feedback = document.getElementById("feedback");
  const emptyState = document.getElementById("empty-state");
  const legend = document.getElementById("legend");
  const guidelines = document.getElementById("guidelines");

  const SIDE_KEYS = {
    left: { safe: "q", unsafe: "w", severity: "e", categories: "r" },
    right: { safe: "p", unsafe: "o", severity: "i", categories: "u" },
  };
  const QUESTION_KEYS = {
    a: ["helpfulness", "left"], s: ["helpfulness", "equal"], d: ["helpfulness", "right"],
    z: ["harmlessness", "left"], x: ["harmlessness", "equal"], c: ["harmlessness", "right"],
  };

  let state = {
    assignmentId: document.getElementById("assignment-id").value,
    key: document.getElementById("idempotency-key").value || randomKey(),
    startedAt: performance.now(),
    confirmed: false,
    busy: false,
  };

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function field(name) { return form.elements.namedItem(name); }
  function checkedValue(name) {
    const checked = form.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : null;
  }
  function check(name, value) {
    const input = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); }
  }
  function panel(side) { return form.querySelector('.ws-response[data-side="' + side + '"]'); }

  function say(kind, lines) {
    feedback.replaceChildren();
    lines.forEach((line) => {
      const p = document.createElement("p");
      p.className = "feedback-" + kind;
      p.textContent = line;
      feedback.appendChild(p);
    });
  }

  // A response marked safe cannot carry categories or a severity: the controls are disabled
  // and cleared, which is how "categories on a safe response" are blocked.
  function syncSide(side) {
    const safety = checkedValue(side + "_safety");
    const box = panel(side);
    box.classList.toggle("is-safe", safety === "safe");
    box.classList.toggle("is-unsafe", safety === "unsafe");
    const unsafe = safety === "unsafe";
    box.querySelectorAll('[data-role="categories"], [data-role="severity"]').forEach((fs) => {
      fs.disabled = !unsafe;
      if (!unsafe) fs.querySelectorAll("input").forEach((i) => { i.checked = false; });
    });
  }

  function setSafety(side, value) { check(side + "_safety", value); syncSide(side); state.confirmed = false; }

  function cycleSeverity(side) {
    if (checkedValue(side + "_safety") !== "unsafe") setSafety(side, "unsafe");
    const current = parseInt(checkedValue(side + "_severity") || "0", 10);
    check(side + "_severity", String((current % 3) + 1));
  }

  function focusCategories(side) {
    if (checkedValue(side + "_safety") !== "unsafe") setSafety(side, "unsafe");
    const first = panel(side).querySelector('input[name="' + side + '_categories"]');
    if (first) first.focus();
  }

  function sideLabel(side) {
    const safety = checkedValue(side + "_safety");
    const categories = Array.from(form.querySelectorAll('input[name="' + side + '_categories"]:checked'), (i) => i.value);
    const severity = parseInt(checkedValue(side + "_severity") || "0", 10);
    return { safety, body: { is_safe: safety === "safe", harm_categories: categories, severity: severity } };
  }

  function collect() {
    const errors = [];
    const sides = {};
    ["left", "right"].forEach((side) => {
      const { safety, body } = sideLabel(side);
      if (!safety) errors.push("Mark the " + side + " response safe or unsafe (" + SIDE_KEYS[side].safe.toUpperCase() + "/" + SIDE_KEYS[side].unsafe.toUpperCase() + ").");
      else if (!body.is_safe && body.harm_categories.length === 0) errors.push("Pick at least one harm category for the " + side + " response (" + SIDE_KEYS[side].categories.toUpperCase() + ").");
      else if (!body.is_safe && body.severity === 0) errors.push("Pick a severity for the " + side + " response (" + SIDE_KEYS[side].severity.toUpperCase() + ").");
      sides[side] = body;
    });
    const helpfulness = checkedValue("helpfulness");
    const harmlessness = checkedValue("harmlessness");
    if (!helpfulness) errors.push("Say which response is more helpful (A / S / D).");
    if (!harmlessness) errors.push("Say which response is more harmless (Z / X / C).");
    const confidence = checkedValue("confidence");
    const body = {
      left: sides.left, right: sides.right, helpfulness: helpfulness, harmlessness: harmlessness,
      confidence: confidence ? parseInt(confidence, 10) : null,
      rationale: field("rationale").value,
      time_spent_ms: Math.round(performance.now() - state.startedAt),
    };
    return { errors, body, warnings: errors.length ? [] : warningsFor(body) };
  }

  // The same checks the server makes (backend/domain/labels.py); the server's are authoritative.
  function warningsFor(body) {
    const out = [];
    const { left, right, harmlessness } = body;
    if (left.is_safe !== right.is_safe) {
      const unsafeSide = left.is_safe ? "right" : "left";
      const safeSide = left.is_safe ? "left" : "right";
      if (harmlessness === unsafeSide) out.push("The " + unsafeSide + " response is marked unsafe and the " + safeSide + " one safe, but the " + unsafeSide + " one is chosen as more harmless.");
      else if (harmlessness === "equal") out.push("One response is marked safe and the other unsafe, yet harmlessness is 'equal'.");
    } else if (!left.is_safe && !right.is_safe && harmlessness !== "equal") {
      const chosen = harmlessness === "left" ? left : right;
      const other = harmlessness === "left" ? right : left;
      if (chosen.severity > other.severity) out.push("The " + harmlessness + " response has the higher severity but is chosen as more harmless.");
    }
    return out;
  }

  async function api(method, url, body, headers) {
    const init = {
      method: method, credentials: "same-origin",
      headers: Object.assign({ "X-CSRF-Token": csrf, "Accept": "application/json" }, headers || {}),
    };
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const response = await fetch(url, init);
    if (response.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname)); throw new Error("logged out"); }
    let data = null;
    if (response.status !== 204) { try { data = await response.json(); } catch (e) { data = null; } }
    return { status: response.status, data: data };
  }

  function setProgress(name, value) {
    const el = ws.querySelector('[data-progress="' + name + '"]');
    if (el && value !== undefined && value !== null) el.textContent = String(value);
  }

  async function refreshProgress() {
    try {
      const { status, data } = await api("GET", "/api/v1/projects/" + projectId + "/progress");
      if (status === 200) { setProgress("today", data.submitted_by_me_today); setProgress("total", data.submitted_by_me); setProgress("left", data.available_to_me); }
    } catch (e) { /* the counter is informative only */ }
  }

  // HH-style prompts end with the Human turn that both responses answer; the prompt box is short,
  // so it opens on that last turn (from its start when it is taller than the box) instead of on
  // the dialogue's first lines. A single-turn prompt opens at its top.
  function showPromptEnd() {
    const box = document.getElementById("prompt-text");
    const text = box.firstChild;
    const start = box.textContent.lastIndexOf("Human:");
    box.scrollTop = 0;
    if (start <= 0 || !text || text.nodeType !== Node.TEXT_NODE) return;
    const range = document.createRange();
    range.setStart(text, start);
    range.setEnd(text, start + 1);
    const turnTop = range.getBoundingClientRect().top - box.getBoundingClientRect().top;
    box.scrollTop = Math.min(Math.max(turnTop - 4, 0), box.scrollHeight - box.clientHeight);
  }

  // A half-entered answer survives a reload: it is kept per assignment in localStorage, restored
  // when the same pair shows again, and dropped once the pair is submitted, skipped or lost.
  const DRAFT_PREFIX = "saferlhf:draft:";
  const DRAFT_MAX_AGE_MS = 24 * 3600 * 1000;
  function draftKey(assignmentId) { return DRAFT_PREFIX + assignmentId; }

  function saveDraft() {
    if (!state.assignmentId || form.hidden) return;
    const draft = {
      checked: Array.from(form.querySelectorAll("input:checked"), (i) => [i.name, i.value]),
      rationale: field("rationale").value,
      elapsed: Math.round(performance.now() - state.startedAt),
      savedAt: Date.now(),
    };
    try { localStorage.setItem(draftKey(state.assignmentId), JSON.stringify(draft)); } catch (e) { /* storage off or full: no draft */ }
  }

  function dropDraft(assignmentId) {
    try { localStorage.removeItem(draftKey(assignmentId)); } catch (e) { /* nothing to drop */ }
  }

  function readDraft(key) {
    try { return JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { return null; }
  }

  function restoreDraft() {
    const draft = readDraft(draftKey(state.assignmentId));
    if (!draft || !Array.isArray(draft.checked)) return;
    draft.checked.forEach(([name, value]) => {
      const input = form.querySelector('input[name="' + CSS.escape(name) + '"][value="' + CSS.escape(value) + '"]');
      if (input) input.checked = true;
    });
    field("rationale").value = typeof draft.rationale === "string" ? draft.rationale : "";
    state.startedAt = performance.now() - (Number(draft.elapsed) || 0);
    ["left", "right"].forEach(syncSide);
  }

  // Drafts of pairs that were never finished (the lease ran out) would otherwise pile up.
  function pruneDrafts() {
    try {
      Object.keys(localStorage).filter((k) => k.startsWith(DRAFT_PREFIX)).forEach((k) => {
        const draft = readDraft(k);
        if (!draft || !(Date.now() - Number(draft.savedAt) < DRAFT_MAX_AGE_MS)) localStorage.removeItem(k);
      });
    } catch (e) { /* storage off */ }
  }

  function resetForm() {
    form.querySelectorAll("input[type=radio], input[type=checkbox]").forEach((i) => { i.checked = false; });
    field("rationale").value = "";
    ["left", "right"].forEach(syncSide);
  }

  function renderTask(task) {
    // textContent only: imported texts are untrusted and must never become markup.
    document.getElementById("prompt-text").textContent = task.prompt;
    document.getElementById("left-text").textContent = task.left;
    document.getElementById("right-text").textContent = task.right;
    ["left-text", "right-text"].forEach((id) => { document.getElementById(id).scrollTop = 0; });
    document.getElementById("assignment-id").value = String(task.assignment_id);
    state = { assignmentId: String(task.assignment_id), key: randomKey(), startedAt: performance.now(), confirmed: false, busy: false };
    document.getElementById("idempotency-key").value = state.key;
    resetForm();
    restoreDraft();
    emptyState.hidden = true;
    form.hidden = false;
    showPromptEnd();
    form.focus({ preventScroll: true });
  }

  function showEmpty(title, text) {
    form.hidden = true;
    emptyState.hidden = false;
    document.getElementById("empty-title").textContent = title;
    document.getElementById("empty-text").textContent = text;
  }

  function showNext(task, note) {
    if (!task) { showEmpty("All done for now", "No pairs are left for you in this project. Thank you! New pairs appear here when they are added."); return; }
    renderTask(task);
    if (note) say("ok", [note]); else feedback.replaceChildren();
  }

  async function loadNext(note) {
    const { status, data } = await api("POST", "/api/v1/projects/" + projectId + "/assignments/next");
    if (status === 200 || status === 204) showNext(status === 200 ? data : null, note);
    else say("error", [(data && data.detail) || "Could not load the next pair (" + status + "). Reload the page."]);
    refreshProgress();
  }

  // Counters move locally after each save; the server's figures are fetched every few pairs.
  let savedSinceRefresh = 0;
  function countSaved() {
    ["today", "total"].forEach((name) => {
      const el = ws.querySelector('[data-progress="' + name + '"]');
      if (el && /^[0-9]+$/.test(el.textContent)) el.textContent = String(Number(el.textContent) + 1);
    });
    savedSinceRefresh += 1;
    if (savedSinceRefresh >= 5) { savedSinceRefresh = 0; refreshProgress(); }
  }

  async function submit() {
    if (state.busy || form.hidden) return;
    const { errors, body, warnings } = collect();
    if (errors.length) { say("error", errors); return; }
    if (warnings.length && !state.confirmed) {
      state.confirmed = true;
      say("warn", warnings.concat(["Check your answers, or press Enter again to submit anyway."]));
      return;
    }
    state.busy = true;
    const assignmentId = state.assignmentId;
    try {
      // One request saves the answer and leases the next pair, so the next pair shows at once.
      const { status, data } = await api("POST", "/api/v1/assignments/" + assignmentId + "/submit-and-next", body, { "Idempotency-Key": state.key });
      if (status === 201) { dropDraft(assignmentId); showNext(data.next, "Saved."); countSaved(); if (!data.next) refreshProgress(); return; }
      if (status === 409) { dropDraft(assignmentId); await loadNext((data && data.detail) ? "Previous pair not saved: " + data.detail : "Previous pair not saved."); return; }
      if (status === 422 && data && data.code === "idempotency_key_reused") {
        // The first attempt reached the server before the connection dropped: that answer stands.
        dropDraft(assignmentId);
        await loadNext("Your first answer for that pair had already been saved.");
        return;
      }
      say("error", [(data && data.detail) || "The server refused the answer (" + status + ")."]);
    } catch (e) {
      say("error", ["Could not reach the server. Your answers are kept; press Enter to retry."]);
    } finally {
      state.busy = false;
    }
  }

  async function skip() {
    if (state.busy || form.hidden) return;
    state.busy = true;
    const assignmentId = state.assignmentId;
    try {
      const { status, data } = await api("POST", "/api/v1/assignments/" + assignmentId + "/skip");
      if (status === 200 || status === 409) { dropDraft(assignmentId); await loadNext("Skipped; the pair went back to the pool."); }
      else say("error", [(data && data.detail) || "Could not skip (" + status + ")."]);
    } catch (e) {
      say("error", ["Could not reach the server; try again."]);
    } finally {
      state.busy = false;
    }
  }

  function toggle(panelEl, button) {
    const show = panelEl.hidden;
    panelEl.hidden = !show;
    ws.querySelectorAll('[aria-controls="' + panelEl.id + '"]').forEach((b) => b.setAttribute("aria-expanded", String(show)));
    if (panelEl === guidelines) { if (show) guidelines.focus(); else if (button) button.focus(); else form.focus(); }
  }

  function moveInGroup(target, step) {
    const group = Array.from(target.closest(".chips").querySelectorAll("input"));
    const next = group[(group.indexOf(target) + step + group.length) % group.length];
    next.focus();
  }

  function onKey(event) {
    if (event.altKey || event.metaKey) return;
    const target = event.target;
    const typing = target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text");
    if (event.key === "Escape") {
      if (!guidelines.hidden) { toggle(guidelines); event.preventDefault(); return; }
      if (typing || target.closest(".chips")) { form.focus(); event.preventDefault(); }
      return;
    }
    if (typing) {
      if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); submit(); }
      return;
    }
    if (event.ctrlKey) return;
    if (target.closest && target.closest(".chips") && ["ArrowDown", "ArrowRight", "ArrowUp", "ArrowLeft"].includes(event.key)) {
      event.preventDefault();
      moveInGroup(target, event.key === "ArrowDown" || event.key === "ArrowRight" ? 1 : -1);
      return;
    }
    if (event.key === "Enter") {
      if (target.tagName === "BUTTON" || target.tagName === "A") return; // let the focused control act
      event.preventDefault();
      submit();
      return;
    }
    const key = event.key.toLowerCase();
    if (key === "?" || (key === "/" && event.shiftKey)) { toggle(legend); event.preventDefault(); return; }
    if (key === "g") { toggle(guidelines); event.preventDefault(); return; }
    if (form.hidden) return;
    for (const side of ["left", "right"]) {
      const keys = SIDE_KEYS[side];
      if (key === keys.safe) { setSafety(side, "safe"); event.preventDefault(); return; }
      if (key === keys.unsafe) { setSafety(side, "unsafe"); event.preventDefault(); return; }
      if (key === keys.severity) { cycleSeverity(side); state.confirmed = false; event.preventDefault(); return; }
      if (key === keys.categories) { focusCategories(side); event.preventDefault(); return; }
    }
    if (QUESTION_KEYS[key]) { check(QUESTION_KEYS[key][0], QUESTION_KEYS[key][1]); state.confirmed = false; event.preventDefault(); return; }
    if (/^[1-5]$/.test(key)) { check("confidence", key); event.preventDefault(); return; }
    if (key === "t") { field("rationale").focus(); event.preventDefault(); return; }
    if (key === "k") { skip(); event.preventDefault(); }
  }

  form.addEventListener("change", (event) => {
    const name = event.target.name || "";
    if (name.endsWith("_safety")) syncSide(name.split("_")[0]);
    state.confirmed = false;
    saveDraft();
  });
  field("rationale").addEventListener("input", saveDraft);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (event.submitter && event.submitter.id === "skip-btn") skip(); else submit();
  });
  ws.querySelectorAll('[data-action="guidelines"]').forEach((b) => b.addEventListener("click", () => toggle(guidelines, b)));
  ws.querySelectorAll('[data-action="legend"]').forEach((b) => b.addEventListener("click", () => toggle(legend, b)));
  document.getElementById("start-form").addEventListener("submit", (event) => { event.preventDefault(); loadNext(); });
  document.addEventListener("keydown", onKey);

  ["left", "right"].forEach(syncSide);
  pruneDrafts();
  if (ws.dataset.hasTask === "true") { restoreDraft(); showPromptEnd(); }
  // On short laptop screens the pair needs the room; every control still shows its key, and
  // "?" brings the full legend back.
  if (window.innerHeight < 720) toggle(legend);
  if (ws.dataset.hasTask === "true") form.focus({ preventScroll: true });
  else loadNext();
})();
