// Plots across rounds from the report rows the page carries (data-rows, the same rows as the table
// and GET /api/v1/projects/{id}/rounds/report). One small Plotly chart per measure; the modebar's
// camera saves each as PNG. A measure no round has (e.g. true helpfulness outside the toy world)
// gets no chart.
(function () {
  "use strict";
  var root = document.getElementById("report-charts");
  if (!root || typeof Plotly === "undefined") { return; }
  var rows = JSON.parse(root.dataset.rows || "[]");
  var projectId = root.dataset.projectId;
  var SAFETY = ["red_safe/blue_safe", "red_safe/blue_unsafe", "red_unsafe/blue_safe", "red_unsafe/blue_unsafe"];

  function value(row, path) {
    var v = row;
    for (var i = 0; i < path.length; i++) { v = v === null || v === undefined ? null : v[path[i]]; }
    return typeof v === "number" ? v : null;
  }

  function series(name, path, extra) {
    var trace = { name: name, x: rows.map(function (r) { return r.round; }), y: rows.map(function (r) { return value(r, path); }),
      mode: "lines+markers", marker: { size: 7 }, connectgaps: true };
    return Object.assign(trace, extra || {});
  }

  var CHARTS = [
    { id: "true_helpfulness", title: "True helpfulness (toy-world judge)", traces: [
      series("new policy", ["true_helpfulness"]), series("previous policy", ["previous_true_helpfulness"], { line: { dash: "dot" } })] },
    { id: "true_unsafe_rate", title: "True unsafe rate (toy-world judge)", percent: true, traces: [
      series("new policy", ["true_unsafe_rate"]), series("previous policy", ["previous_true_unsafe_rate"], { line: { dash: "dot" } })] },
    { id: "reward_accuracy", title: "Reward-model accuracy", percent: true, traces: [series("accuracy", ["reward_accuracy"])] },
    { id: "cost_sign_accuracy", title: "Cost-model sign accuracy", percent: true, traces: [series("sign accuracy", ["cost_sign_accuracy"])] },
    { id: "lambda", title: "λ at the end of policy training", traces: [series("λ", ["lambda"])] },
    { id: "win_rates", title: "Win rate against the previous policy", percent: true, traces: [series("overall", ["win_rate"])].concat(
      SAFETY.map(function (cell) { return series(cell.replace("red_", "prev ").replace("/blue_", " → new "), ["arena", "by_safety", cell], { line: { dash: "dot" } }); })) },
    { id: "unsafe_ratio", title: "Unsafe ratio (cost model) and mean cost", traces: [series("unsafe ratio", ["unsafe_ratio"]), series("mean cost", ["mean_cost"])] }
  ];

  CHARTS.forEach(function (chart) {
    var traces = chart.traces.filter(function (t) { return t.y.some(function (v) { return v !== null; }); });
    if (!traces.length) { return; }
    var el = document.createElement("div");
    el.className = "report-chart";
    el.dataset.chart = chart.id;
    root.appendChild(el);
    var layout = {
      title: { text: chart.title, font: { size: 13 } },
      // A legend goes below the axis title, so the bottom margin grows with it.
      margin: { l: 52, r: 12, t: 36, b: traces.length > 1 ? 92 : 40 },
      height: traces.length > 1 ? 320 : 280,
      xaxis: { title: { text: "round" }, dtick: 1 },
      yaxis: chart.percent ? { tickformat: ".0%" } : {},
      showlegend: traces.length > 1,
      legend: { orientation: "h", x: 0, y: -0.3, yanchor: "top", font: { size: 10 } }
    };
    var config = {
      displaylogo: false,
      responsive: true,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
      toImageButtonOptions: { format: "png", filename: "project-" + projectId + "-rounds-" + chart.id }
    };
    Plotly.newPlot(el, traces, layout, config);
  });
  root.dataset.charts = String(root.querySelectorAll(".report-chart").length);
})();
