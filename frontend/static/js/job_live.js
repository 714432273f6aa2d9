// Live job page: while the job is queued or running, asks GET /api/v1/jobs/{id} and
// GET /api/v1/jobs/{id}/log every 2 s and updates the state badge, progress, step, ETA, attempt,
// worker, start and finish times, the error, the buttons that apply and the log tail (kept scrolled
// to the bottom unless the reader scrolled up). Once the job is final it refreshes one last time,
// also asking GET /api/v1/models?training_job_id={id} for the models it produced (the worker
// registers them in the same transaction that marks the job succeeded), and stops. The metric
// charts poll on their own (job_charts.js). No reload, no inline script (CSP script-src 'self').
(function () {
  "use strict";
  var POLL_MS = 2000;
  var LOG_LINES = 200;
  var FINAL = { succeeded: true, failed: true, cancelled: true };
  var BADGES = { succeeded: "badge-safe", failed: "badge-unsafe", cancelled: "badge-warn", running: "badge-run" };

  var root = document.getElementById("job-status");
  if (!root) { return; }
  var jobId = root.dataset.jobId;
  var timer = null;
  var ticker = null;
  var updatedAt = null;  // Date.now() of the last successful refresh
  var failing = false;

  function byId(id) { return document.getElementById(id); }

  function setText(id, text) {
    var el = byId(id);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); });
  }

  function span(seconds) {
    var s = Math.max(0, Math.round(seconds));
    if (s >= 3600) { return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min"; }
    if (s >= 60) { return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
    return s + " s";
  }

  // The server renders times as "YYYY-MM-DD HH:MM:SS" in UTC (jobs/_macros.html `when`); the API's
  // ISO strings are UTC too, so the same characters are shown without converting time zones.
  function showTime(id, iso) {
    var dd = byId(id);
    if (!dd) { return; }
    var current = dd.querySelector("time");
    if (!iso) { return; }  // a time the job has not reached yet stays "–"
    if (current && current.getAttribute("datetime") === iso) { return; }
    var time = document.createElement("time");
    time.setAttribute("datetime", iso);
    time.textContent = iso.slice(0, 19).replace("T", " ");
    dd.replaceChildren(time);
  }

  function showDuration(job) {
    if (!job.started_at) { return; }
    var end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
    setText("job-duration", span((end - Date.parse(job.started_at)) / 1000));
  }

  function showState(state) {
    var badge = document.querySelector("#job-state [data-state]");
    if (badge && badge.dataset.state !== state) {
      badge.dataset.state = state;
      badge.textContent = state;
      badge.className = "badge " + (BADGES[state] || "");
    }
  }

  function showActions(job) {
    Array.prototype.forEach.call(document.querySelectorAll("#job-actions form[data-when]"), function (form) {
      var applies = form.dataset.when.split(" ").indexOf(job.state) !== -1;
      // A pending cancel cannot be asked for again.
      if (form.action.indexOf("/cancel") !== -1 && job.cancel_requested) { applies = false; }
      form.hidden = !applies;
    });
  }

  function showJob(job) {
    var final = FINAL[job.state] === true;
    showState(job.state);
    var bar = byId("job-progress");
    if (bar) { bar.value = job.progress; }
    setText("job-progress-text", (job.progress * 100).toFixed(1) + "%");
    if (job.current_step !== null) { setText("job-step", String(job.current_step)); }
    if (job.total_steps) { setText("job-total", String(job.total_steps)); }
    setText("job-eta", final || job.eta_s === null ? "–" : span(job.eta_s));
    setText("job-attempt", String(job.attempt));
    setText("job-max-attempts", String(job.max_attempts));
    setText("job-worker", job.worker_id || "–");
    var cancelNote = byId("job-cancel-requested");
    if (cancelNote) { cancelNote.hidden = !(job.cancel_requested && !final); }
    var error = byId("job-error");
    if (error) {
      error.hidden = !job.error;
      if (error.textContent !== (job.error || "")) { error.textContent = job.error || ""; }
    }
    showTime("job-started", job.started_at);
    showTime("job-finished", job.finished_at);
    showDuration(job);
    showActions(job);
  }

  function showLog(text) {
    var pre = byId("job-log");
    if (!pre || pre.textContent === text) { return; }
    // Follow the end only if the reader is at it: someone who scrolled up to read stays put.
    var atEnd = pre.hidden || pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.textContent = text;
    pre.hidden = text === "";
    var empty = byId("job-log-empty");
    if (empty) { empty.hidden = text !== ""; }
    if (atEnd) { pre.scrollTop = pre.scrollHeight; }
  }

  function showModels(models) {
    var list = byId("job-models");
    if (!list) { return; }
    models.slice().sort(function (a, b) { return a.id - b.id; }).forEach(function (m) {
      if (list.querySelector('li[data-model-id="' + m.id + '"]')) { return; }
      var li = document.createElement("li");
      li.dataset.modelId = String(m.id);
      var link = document.createElement("a");
      link.href = "/admin/models/" + m.id;
      link.textContent = m.kind + " model #" + m.id + ": " + m.name;
      li.appendChild(link);
      list.appendChild(li);
    });
    var empty = byId("job-models-empty");
    if (empty) { empty.hidden = list.children.length > 0; }
  }

  function showLive() {
    var note = byId("job-live");
    if (!note || root.dataset.final === "true") { return; }
    if (updatedAt === null) { return; }
    var ago = Math.round((Date.now() - updatedAt) / 1000);
    note.textContent = (failing ? "Live: the last refresh failed, retrying; updated " : "Live: updated ") + ago + " s ago";
  }

  function finish(job) {
    root.dataset.final = "true";
    root.dataset.state = job.state;
    if (ticker) { clearInterval(ticker); ticker = null; }
    setText("job-live", "Final state: " + job.state + "; no longer updating.");
  }

  function poll() {
    var base = "/api/v1/jobs/" + jobId;
    Promise.all([getJson(base), getJson(base + "/log?lines=" + LOG_LINES)])
      .then(function (answers) {
        var job = answers[0];
        showJob(job);
        showLog(answers[1].log_tail);
        root.dataset.state = job.state;
        if (!FINAL[job.state]) { return null; }
        // The last refresh: the produced models are committed with the final state.
        return getJson("/api/v1/models?training_job_id=" + jobId).then(function (models) {
          showModels(models);
          return job;
        });
      })
      .then(function (finalJob) {
        failing = false;
        updatedAt = Date.now();
        if (finalJob) { finish(finalJob); return; }
        showLive();
        timer = setTimeout(poll, POLL_MS);
      })
      .catch(function () {  // a blip: say so and try again later
        failing = true;
        showLive();
        timer = setTimeout(poll, POLL_MS * 2);
      });
  }

  var initialLog = byId("job-log");
  if (initialLog) { initialLog.scrollTop = initialLog.scrollHeight; }
  if (root.dataset.final !== "true") {
    poll();
    ticker = setInterval(showLive, 1000);
  }
  window.addEventListener("pagehide", function () {
    if (timer) { clearTimeout(timer); }
    if (ticker) { clearInterval(ticker); }
  });
})();
