/* The what-if page's chart (issue 27): one group of bars per rate, one bar per definition set, the stored
   definitions first, from the cells the page embeds in #compare-data. A rate without a denominator is null: no bar
   (Appendix B). Once Chart.js has drawn it, the canvas gets data-rendered="true". */
(function () {
  "use strict";

  var COLOURS = ["#646b79", "#3c71f7", "#2a9d5c", "#e08a00", "#d0443a", "#8e44ad", "#17a2b8"];

  function draw() {
    var source = document.getElementById("compare-data");
    var canvas = document.getElementById("compare-chart");
    if (!source || !canvas) {
      return;
    }
    if (typeof window.Chart === "undefined") {
      document.getElementById("chart-missing").hidden = false;
      return;
    }
    var data = JSON.parse(source.textContent);
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.figures,
        datasets: data.sets.map(function (set, i) {
          return { label: set.label, data: set.values, backgroundColor: COLOURS[i % COLOURS.length] };
        })
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          y: { beginAtZero: true, max: 1, ticks: { callback: function (v) { return Math.round(v * 100) + "%"; } } }
        },
        plugins: {
          tooltip: { callbacks: { label: function (item) {
            return item.dataset.label + ": " + (item.raw === null ? "no denominator" : (item.raw * 100).toFixed(2) + "%");
          } } }
        }
      },
      plugins: [{ id: "convoscopeRendered", afterRender: function (chart) {
        chart.canvas.setAttribute("data-rendered", "true");
      } }]
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());
