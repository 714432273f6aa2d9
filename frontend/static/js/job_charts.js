// Live metric charts of a training job: one small Plotly chart per metric. While the job runs, the
// page asks GET /api/v1/jobs/{id}/metrics?after_step=N every 2 s and appends only the new points;
// once the job is in a final state it fetches one last time and stops. Plotly's modebar saves a
// chart as PNG (the camera icon). The state, progress, log and models are job_live.js's.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var FINAL = { succeeded: true, failed: true, cancelled: true };
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

  function showFinal(state) {
    var note = document.getElementById("charts-note");
    if (note) { note.textContent = "Final values per step (the job " + state + "). Each chart's camera icon saves it as PNG."; }
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
        root.dataset.state = data.state;
        if (FINAL[data.state]) { root.dataset.final = "true"; showFinal(data.state); return; }
        timer = setTimeout(poll, POLL_MS);
      })
      .catch(function () { timer = setTimeout(poll, POLL_MS * 2); });  // a blip: try again later
  }

  poll();
  window.addEventListener("pagehide", function () { if (timer) { clearTimeout(timer); } });
})();
