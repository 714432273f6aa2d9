// Live metric charts of a training job: one small Plotly chart per metric. While the job runs, the
// page asks GET /api/v1/jobs/{id}/metrics?after_step=N every 2 s and appends only the new points;
// once the job is in a final state it fetches one last time and stops. Plotly's modebar saves a
// chart as PNG (the camera icon).
(function () {
  "use strict";
  var POLL_MS = 2000;
  var FINAL = { succeeded: true, failed: true, cancelled: true };
  var BADGES = { succeeded: "badge-safe", failed: "badge-unsafe", cancelled: "badge-warn", running: "badge-run" };
  // The metrics people look at first come first; the rest follow by name.
  var ORDER = ["train/loss", "eval/accuracy", "train/accuracy", "train/reward", "train/cost",
    "train/lambda", "train/kl_divergence", "train/episode_cost"];

  var root = document.getElementById("job-charts");
  if (!root || typeof Plotly === "undefined") { return; }
  var jobId = root.dataset.jobId;
  var charts = {};       // metric name -> {el, lastStep}
  var lastStep = null;   // largest step received over all metrics
  var timer = null;

  function rank(name) {
    var i = ORDER.indexOf(name);
    return i === -1 ? ORDER.length : i;
  }

  function insertChart(name) {
    var el = document.createElement("div");
    el.className = "job-chart";
    el.dataset.metric = name;
    el.dataset.points = "0";
    var before = null;
    Array.prototype.forEach.call(root.querySelectorAll(".job-chart"), function (other) {
      var m = other.dataset.metric;
      if (before === null && (rank(name) < rank(m) || (rank(name) === rank(m) && name < m))) { before = other; }
    });
    root.insertBefore(el, before);
    var empty = document.getElementById("charts-empty");
    if (empty) { empty.remove(); }
    var layout = {
      title: { text: name, font: { size: 13 } },
      margin: { l: 48, r: 12, t: 32, b: 36 },
      height: 240,
      xaxis: { title: { text: "step" } },
      showlegend: false
    };
    var config = {
      displaylogo: false,
      responsive: true,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
      toImageButtonOptions: { format: "png", filename: "job-" + jobId + "-" + name.replace(/[^a-z0-9]+/gi, "_") }
    };
    Plotly.newPlot(el, [{ x: [], y: [], mode: "lines+markers", marker: { size: 4 }, name: name }], layout, config);
    charts[name] = { el: el, lastStep: null };
    return charts[name];
  }

  function append(name, points) {
    var chart = charts[name] || insertChart(name);
    // A poll overlaps the previous one by a step (see poll()); keep only points not shown yet.
    var fresh = points.filter(function (p) { return chart.lastStep === null || p[0] > chart.lastStep; });
    if (!fresh.length) { return; }
    Plotly.extendTraces(chart.el, {
      x: [fresh.map(function (p) { return p[0]; })],
      y: [fresh.map(function (p) { return p[1]; })]
    }, [0]);
    chart.lastStep = fresh[fresh.length - 1][0];
    chart.el.dataset.points = String(Number(chart.el.dataset.points) + fresh.length);
  }

  function formatEta(seconds) {
    if (seconds === null || seconds === undefined) { return "–"; }
    var s = Math.round(seconds);
    if (s >= 3600) { return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min"; }
    if (s >= 60) { return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
    return s + " s";
  }

  function showStatus(data) {
    var bar = document.getElementById("job-progress");
    if (bar) { bar.value = data.progress; }
    var text = document.getElementById("job-progress-text");
    if (text) { text.textContent = (data.progress * 100).toFixed(1) + "%"; }
    var step = document.getElementById("job-step");
    if (step && data.current_step !== null) { step.textContent = String(data.current_step); }
    var eta = document.getElementById("job-eta");
    if (eta) { eta.textContent = FINAL[data.state] ? "–" : formatEta(data.eta_s); }
    var state = document.querySelector("#job-state [data-state]");
    if (state && state.dataset.state !== data.state) {
      state.dataset.state = data.state;
      state.textContent = data.state;
      state.className = "badge " + (BADGES[data.state] || "");
      var note = document.getElementById("charts-note");
      if (note && FINAL[data.state]) { note.textContent = "The job is " + data.state + "; reload for the final log and models."; }
      // Cancel no longer applies to a finished job; a reload shows Retry where it does.
      var actions = document.getElementById("job-actions");
      if (actions && FINAL[data.state]) { actions.hidden = true; }
    }
  }

  function poll() {
    // Ask again from one step before the last: points of one step may be stored in two
    // transactions, and append() drops what is already drawn.
    var url = "/api/v1/jobs/" + jobId + "/metrics";
    if (lastStep !== null) { url += "?after_step=" + (lastStep - 1); }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (data) {
        Object.keys(data.series).forEach(function (name) { append(name, data.series[name]); });
        if (data.last_step !== null && (lastStep === null || data.last_step > lastStep)) { lastStep = data.last_step; }
        showStatus(data);
        root.dataset.state = data.state;
        if (FINAL[data.state]) { root.dataset.final = "true"; return; }
        timer = setTimeout(poll, POLL_MS);
      })
      .catch(function () { timer = setTimeout(poll, POLL_MS * 2); });  // a blip: try again later
  }

  poll();
  window.addEventListener("pagehide", function () { if (timer) { clearTimeout(timer); } });
})();
