/* The dashboard's charts (SPEC 6.3, issue 26): draws the report cells the page embeds. #dashboard-data holds the
   sessions-summary's, one chart per canvas[data-figure]; #outcomes-data the Outcomes section's, one chart per
   canvas[data-chart]: rates as lines, Resolution Classes as stacked bars, the handoff funnel as horizontal bars
   centred on one axis, each step labelled with its count and its share of the first. Every period of the range
   is on the axis; the page already put a zero where a count has no row, and null (a gap) where a rate has no
   denominator, a period without rows included (Appendix B). Chart.js is served from /vendor (npm), so nothing
   leaves the machine. Once Chart.js has drawn a chart, its canvas gets data-rendered="true". */
(function () {
  "use strict";

  var COLOURS = {
    sessions: "#3c71f7",
    resolution_rate: "#2a9d5c",
    handoff_rate: "#e08a00",
    recontact_rate: "#d0443a",
    durable_resolution_rate: "#2a9d5c",
    negative_feedback_rate: "#d0443a",
    confirmed: "#1f7a48",
    disputed: "#d0443a",
    came_back: "#e08a00",
    durable: "#3c71f7",
    pending: "#9aa1ad",
    automation_rate: "#2a9d5c",
    ai_coverage: "#3c71f7",
    steps: "#3c71f7"
  };
  var FUNNEL = ["#3c71f7", "#5a87f8", "#789df9", "#96b3fa", "#b4c9fb"];

  function percent(value, decimals) {
    return (value * 100).toFixed(decimals) + "%";
  }

  function read(id) {
    var source = document.getElementById(id);
    return source ? JSON.parse(source.textContent) : null;
  }

  function draw() {
    var sessions = read("dashboard-data");
    var outcomes = read("outcomes-data");
    if (!sessions && !outcomes) {
      return;
    }
    if (typeof window.Chart === "undefined") {
      var note = document.getElementById("chart-missing");
      if (note) {
        note.hidden = false;
      }
      return;
    }
    var style = getComputedStyle(document.documentElement);
    var muted = style.getPropertyValue("--pico-muted-color").trim() || "#646b79";
    var lines = style.getPropertyValue("--pico-muted-border-color").trim() || "#e7eaf0";
    var marked = {
      id: "convoscopeRendered",
      afterRender: function (chart) {
        chart.canvas.setAttribute("data-rendered", "true");
      }
    };

    function dataset(label, values, colour, rate, many) {
      return {
        label: label,
        data: values,
        borderColor: colour,
        backgroundColor: rate ? colour : colour + "b3",
        borderWidth: rate ? 2 : 0,
        pointRadius: many ? 0 : 3,
        spanGaps: false,
        tension: 0
      };
    }

    /* Options of a chart over time: `rate` puts the y axis in percent, `stacked` stacks the bars, `legend`
       names the datasets when there are several. */
    function overTime(rate, stacked, legend) {
      return {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: legend, labels: { color: muted, boxWidth: 12 } },
          tooltip: {
            callbacks: {
              label: function (item) {
                var name = legend ? " " + item.dataset.label + ":" : "";
                if (item.raw === null) {
                  return name + " no value";
                }
                return name + " " + (rate ? percent(item.raw, 1) : item.raw);
              }
            }
          }
        },
        scales: {
          x: { stacked: stacked, ticks: { color: muted, autoSkip: true, maxRotation: 0 }, grid: { display: false } },
          y: {
            stacked: stacked,
            beginAtZero: true,
            suggestedMax: rate ? 1 : undefined,
            ticks: {
              color: muted,
              precision: rate ? undefined : 0,
              callback: function (value) {
                return rate ? percent(value, 0) : value;
              }
            },
            grid: { color: lines }
          }
        }
      };
    }

    /* The handoff funnel: each step a bar centred on the first step's middle, so that the bars narrow as a
       funnel does; the labels carry each count and its share of the first step. */
    function funnel(canvas, chart) {
      var counts = chart.datasets[0].values;
      var widest = counts.length ? counts[0] : 0;
      var labels = chart.labels.map(function (label, i) {
        return [label, counts[i] + " · " + chart.shares[i]];
      });
      return new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: labels,
          datasets: [{
            label: canvas.getAttribute("data-title") || "",
            data: counts.map(function (count) { return [(widest - count) / 2, (widest + count) / 2]; }),
            backgroundColor: FUNNEL,
            borderWidth: 0,
            barPercentage: 0.95,
            categoryPercentage: 0.95
          }]
        },
        options: {
          indexAxis: "y",
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                title: function (items) { return chart.labels[items[0].dataIndex]; },
                label: function (item) {
                  return " " + counts[item.dataIndex] + " (" + chart.shares[item.dataIndex] + ")";
                }
              }
            }
          },
          scales: {
            x: { display: false, min: 0, max: Math.max(widest, 1) },
            y: { ticks: { color: muted, autoSkip: false }, grid: { display: false } }
          }
        },
        plugins: [marked]
      });
    }

    if (sessions) {
      document.querySelectorAll("canvas[data-figure]").forEach(function (canvas) {
        var figure = canvas.getAttribute("data-figure");
        var values = sessions.series[figure];
        if (!values) {
          return;
        }
        var rate = sessions.rates.indexOf(figure) >= 0;
        new window.Chart(canvas, {
          type: rate ? "line" : "bar",
          data: {
            labels: sessions.labels,
            datasets: [dataset(canvas.getAttribute("data-title") || figure, values, COLOURS[figure] || "#3c71f7", rate,
                               sessions.labels.length > 60)]
          },
          options: overTime(rate, false, false),
          plugins: [marked]
        });
      });
    }

    if (outcomes) {
      document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
        var chart = outcomes[canvas.getAttribute("data-chart")];
        if (!chart) {
          return;
        }
        if (chart.kind === "funnel") {
          funnel(canvas, chart);
          return;
        }
        var rate = chart.kind === "rates";
        new window.Chart(canvas, {
          type: rate ? "line" : "bar",
          data: {
            labels: chart.labels,
            datasets: chart.datasets.map(function (set) {
              return dataset(set.label, set.values, COLOURS[set.figure] || "#3c71f7", rate, chart.labels.length > 60);
            })
          },
          options: overTime(rate, chart.kind === "stacked", true),
          plugins: [marked]
        });
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());
