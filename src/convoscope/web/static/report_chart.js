/* The chart above a summary report's table (issue 28 point 3): draws #report-chart-data, which web/charts.py built
   from the report's own rows for the page's parameters, the figure the select #chart-figure names. Over periods:
   one series per dimension value (the page already put 0 where a count has no row and null, a gap, where a rate
   or an average has none), counts as bars (stacked with a dimension: with Other they add up to the whole), other
   figures as lines; per row (guide-effectiveness, handoff-themes): one horizontal bar per row. A rate is drawn on
   a percent axis, one decimal in its tooltip. Once drawn, the canvas gets data-rendered="true" and
   data-figure the figure it shows. Chart.js is served from /vendor (npm), so nothing leaves the machine. */
(function () {
  "use strict";

  var COLOURS = ["#3c71f7", "#2a9d5c", "#e08a00", "#d0443a", "#8e5bd0", "#1f9bb4", "#b5651d", "#c2417f", "#9aa1ad"];

  function read() {
    var source = document.getElementById("report-chart-data");
    return source ? JSON.parse(source.textContent) : null;
  }

  /* A value as drawn: a fraction (0.5333) as a percentage (53.33), a percentage as it is, another number too. */
  function drawn(value, scale) {
    if (value === null || value === undefined) {
      return null;
    }
    return scale === "fraction" ? value * 100 : value;
  }

  /* Seconds as people read them: 185 as 3m 05s, 3725 as 1h 02m 05s (issue 28: durations on screen). */
  function duration(seconds) {
    var whole = Math.round(seconds);
    var hours = Math.floor(whole / 3600);
    var minutes = Math.floor((whole % 3600) / 60);
    var rest = whole % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (hours) {
      return hours + "h " + two(minutes) + "m " + two(rest) + "s";
    }
    return minutes ? minutes + "m " + two(rest) + "s" : rest + "s";
  }

  function start() {
    var data = read();
    var canvas = document.getElementById("report-chart");
    var select = document.getElementById("chart-figure");
    if (!data || !canvas || !data.figures.length) {
      return;
    }
    if (typeof window.Chart === "undefined") {
      document.getElementById("chart-missing").hidden = false;
      return;
    }
    var style = getComputedStyle(document.documentElement);
    var muted = style.getPropertyValue("--pico-muted-color").trim() || "#646b79";
    var lines = style.getPropertyValue("--pico-muted-border-color").trim() || "#e7eaf0";
    var figures = {};
    data.figures.forEach(function (figure) { figures[figure.snake] = figure; });
    var chart = null;

    function draw(snake) {
      var figure = figures[snake] || data.figures[0];
      var rate = figure.scale === "fraction" || figure.scale === "percent";
      var seconds = figure.scale === "duration";
      var count = figure.kind === "count";
      var byRow = data.kind === "rows";
      var several = data.series.length > 1;
      var sets = data.series.filter(function (set) { return set.values[figure.snake] !== undefined; })
        .map(function (set, i) {
          var colour = COLOURS[i % COLOURS.length];
          return {
            label: set.label || figure.display,
            data: set.values[figure.snake].map(function (value) { return drawn(value, figure.scale); }),
            borderColor: colour,
            backgroundColor: count || byRow ? colour + "b3" : colour,
            borderWidth: count || byRow ? 0 : 2,
            pointRadius: data.labels.length > 60 ? 0 : 3,
            spanGaps: false,
            tension: 0
          };
        });
      var valueAxis = {
        beginAtZero: true,
        stacked: count && several && !byRow,
        suggestedMax: rate ? 100 : undefined,
        ticks: {
          color: muted,
          precision: count ? 0 : undefined,
          callback: function (value) { return rate ? value + "%" : value; }
        },
        grid: { color: lines }
      };
      var labelAxis = {
        stacked: count && several && !byRow,
        ticks: { color: muted, autoSkip: !byRow, maxRotation: 0 },
        grid: { display: false }
      };
      if (chart) {
        chart.destroy();
      }
      canvas.removeAttribute("data-rendered");
      canvas.setAttribute("data-figure", figure.snake);
      chart = new window.Chart(canvas, {
        type: count || byRow ? "bar" : "line",
        data: { labels: data.labels, datasets: sets },
        options: {
          indexAxis: byRow ? "y" : "x",
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false, axis: byRow ? "y" : "x" },
          plugins: {
            legend: { display: several, labels: { color: muted, boxWidth: 12 } },
            tooltip: {
              callbacks: {
                label: function (item) {
                  var name = several ? " " + item.dataset.label + ":" : "";
                  if (item.raw === null || item.raw === undefined) {
                    return name + " no value";
                  }
                  if (rate) {
                    return name + " " + item.raw.toFixed(1) + "%";
                  }
                  return name + " " + (seconds ? duration(item.raw) : item.raw.toLocaleString());
                }
              }
            }
          },
          scales: byRow ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis }
        },
        plugins: [{
          id: "convoscopeRendered",
          afterRender: function (drawnChart) {
            drawnChart.canvas.setAttribute("data-rendered", "true");
          }
        }]
      });
    }

    draw(select ? select.value : data.default);
    if (select) {
      select.addEventListener("change", function () { draw(select.value); });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
