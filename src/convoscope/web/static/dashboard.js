/* The dashboard's charts (SPEC 6.3): draws the sessions-summary cells the page embeds in
   #dashboard-data, one chart per canvas[data-figure]. Every period of the range is on the axis; the
   page already put a zero where a period has no row, and null (a gap) where a rate has no denominator.
   Chart.js is served from /vendor (npm), so nothing leaves the machine. Once Chart.js has drawn a
   chart, its canvas gets data-rendered="true". */
(function () {
  "use strict";

  var COLOURS = {
    sessions: "#3c71f7",
    resolution_rate: "#2a9d5c",
    handoff_rate: "#e08a00",
    recontact_rate: "#d0443a"
  };

  function percent(value, decimals) {
    return (value * 100).toFixed(decimals) + "%";
  }

  function draw() {
    var source = document.getElementById("dashboard-data");
    if (!source) {
      return;
    }
    if (typeof window.Chart === "undefined") {
      var note = document.getElementById("chart-missing");
      if (note) {
        note.hidden = false;
      }
      return;
    }
    var data = JSON.parse(source.textContent);
    var style = getComputedStyle(document.documentElement);
    var muted = style.getPropertyValue("--pico-muted-color").trim() || "#646b79";
    var lines = style.getPropertyValue("--pico-muted-border-color").trim() || "#e7eaf0";
    var marked = {
      id: "convoscopeRendered",
      afterRender: function (chart) {
        chart.canvas.setAttribute("data-rendered", "true");
      }
    };

    document.querySelectorAll("canvas[data-figure]").forEach(function (canvas) {
      var figure = canvas.getAttribute("data-figure");
      var values = data.series[figure];
      if (!values) {
        return;
      }
      var rate = data.rates.indexOf(figure) >= 0;
      var colour = COLOURS[figure] || "#3c71f7";
      new window.Chart(canvas, {
        type: rate ? "line" : "bar",
        data: {
          labels: data.labels,
          datasets: [{
            label: canvas.getAttribute("data-title") || figure,
            data: values,
            borderColor: colour,
            backgroundColor: rate ? colour : colour + "b3",
            borderWidth: rate ? 2 : 0,
            pointRadius: data.labels.length > 60 ? 0 : 3,
            spanGaps: false,
            tension: 0
          }]
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                label: function (item) {
                  if (item.raw === null) {
                    return " no value";
                  }
                  return " " + (rate ? percent(item.raw, 2) : item.raw);
                }
              }
            }
          },
          scales: {
            x: { ticks: { color: muted, autoSkip: true, maxRotation: 0 }, grid: { display: false } },
            y: {
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
        },
        plugins: [marked]
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
}());
