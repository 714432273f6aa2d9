// Live round page: asks GET /api/v1/rounds/{id} every 2 s and updates the state badge, the stage
// strip, the decided-pairs count, each job's progress bar, step and state, adds rows for jobs a
// new stage submitted, and shows only the buttons that apply to the new state. No reload; polling
// stops once the round is completed, failed or cancelled.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var FINAL = { completed: true, failed: true, cancelled: true };
  var JOB_BADGES = { succeeded: "badge-safe", failed: "badge-unsafe", cancelled: "badge-warn", running: "badge-run" };
  var ROUND_BADGES = { completed: "badge-safe", failed: "badge-unsafe", cancelled: "badge-warn", draft: "", collecting: "badge-gold" };
  var TIMELINE = ["draft", "generating", "collecting", "training", "policy", "evaluating", "completed"];
  var STAGE_NAMES = { generate: "Generate", reward: "Reward & cost", cost: "Reward & cost", evaluate: "Evaluate" };

  var table = document.getElementById("round-jobs");
  if (!table) { return; }
  var roundId = table.dataset.roundId;
  var timer = null;

  function setBadge(el, state, classes) {
    if (!el || el.dataset.state === state) { return; }
    el.dataset.state = state;
    el.textContent = state;
    el.className = "badge " + (classes[state] || (classes === ROUND_BADGES ? "badge-run" : ""));
  }

  function showTimeline(state, failedStage) {
    var reached = state === "failed" && failedStage ? failedStage : state;
    var index = TIMELINE.indexOf(reached);
    Array.prototype.forEach.call(document.querySelectorAll("#round-timeline li"), function (li, i) {
      var status = "pending";
      if (state === "completed" || i < index) { status = "done"; }
      else if (i === index) { status = state === "failed" ? "failed" : (state === "cancelled" ? "pending" : "current"); }
      li.dataset.status = status;
      if (status === "current" || status === "failed") { li.setAttribute("aria-current", "step"); } else { li.removeAttribute("aria-current"); }
      var sr = li.querySelector(".sr-only");
      if (sr) { sr.textContent = " (" + status + ")"; }
    });
  }

  function showActions(state) {
    Array.prototype.forEach.call(document.querySelectorAll("#round-actions form[data-when]"), function (form) {
      form.hidden = form.dataset.when.split(" ").indexOf(state) === -1;
    });
  }

  function cell(text) { var td = document.createElement("td"); td.textContent = text; return td; }

  function addRow(job) {
    var tr = document.createElement("tr");
    tr.dataset.jobId = String(job.id);
    var link = document.createElement("a");
    link.href = "/admin/jobs/" + job.id;
    link.textContent = "#" + job.id + " " + job.kind;
    var first = document.createElement("td");
    first.appendChild(link);
    tr.appendChild(first);
    tr.appendChild(cell(STAGE_NAMES[job.kind] || (job.kind === "dpo" || job.kind.indexOf("ppo") === 0 || job.kind === "reward-shaping" ? "Policy" : "–")));
    var state = document.createElement("td");
    state.className = "job-state";
    var badge = document.createElement("span");
    badge.className = "badge";
    state.appendChild(badge);
    tr.appendChild(state);
    var progress = document.createElement("td");
    var bar = document.createElement("progress");
    bar.className = "job-progress";
    bar.max = 1;
    bar.setAttribute("aria-label", "job " + job.id + " progress");
    var text = document.createElement("span");
    text.className = "job-progress-text";
    progress.appendChild(bar);
    progress.appendChild(document.createTextNode(" "));
    progress.appendChild(text);
    tr.appendChild(progress);
    var step = cell("–");
    step.className = "job-step";
    tr.appendChild(step);
    tr.appendChild(cell("–"));
    table.tBodies[0].appendChild(tr);
    var empty = document.getElementById("no-jobs");
    if (empty) { empty.remove(); }
    return tr;
  }

  function showJob(job) {
    var tr = table.querySelector('tr[data-job-id="' + job.id + '"]') || addRow(job);
    var bar = tr.querySelector("progress");
    if (bar) { bar.value = job.progress; }
    var text = tr.querySelector(".job-progress-text");
    if (text) { text.textContent = (job.progress * 100).toFixed(1) + "%"; }
    var step = tr.querySelector(".job-step");
    if (step) {
      step.textContent = (job.current_step === null ? "–" : String(job.current_step)) + (job.total_steps ? " / " + job.total_steps : "");
    }
    setBadge(tr.querySelector(".job-state .badge"), job.state, JOB_BADGES);
  }

  function show(data) {
    setBadge(document.querySelector("#round-state .badge"), data.state, ROUND_BADGES);
    showTimeline(data.state, data.failed_stage);
    showActions(data.state);
    (data.jobs || []).forEach(showJob);
    var decided = document.getElementById("round-decided");
    if (decided && data.collection) { decided.textContent = String(data.collection.decided); }
    table.dataset.state = data.state;
    var note = document.getElementById("round-live-note");
    if (note) {
      note.textContent = FINAL[data.state]
        ? "The round is " + data.state + "; reload for its report and error details."
        : "Now: " + data.stage + ". Progress updates every 2 seconds. Each job's page has its metric charts.";
    }
  }

  function poll() {
    fetch("/api/v1/rounds/" + roundId, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (data) {
        show(data);
        if (FINAL[data.state]) { table.dataset.final = "true"; return; }
        timer = setTimeout(poll, POLL_MS);
      })
      .catch(function () { timer = setTimeout(poll, POLL_MS * 2); });  // a blip: try again later
  }

  if (table.dataset.final !== "true") { poll(); }
  window.addEventListener("pagehide", function () { if (timer) { clearTimeout(timer); } });
})();
