/* A report table's column chooser (issue 28): a checkbox per column shows or hides it on the page, remembered per
   report in this browser (localStorage, by the columns' snake headers, so a column hidden stays hidden whatever
   --by or extra add); "Show all columns" forgets the choice. Only the page changes: the CSV has every column. */
(function () {
  "use strict";

  var table = document.getElementById("report-rows");
  var chooser = document.getElementById("column-chooser");
  if (!table || !chooser) {
    return;
  }
  var key = "convoscope.hidden-columns." + table.getAttribute("data-report");
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);

  function hidden() {
    try {
      var found = JSON.parse(window.localStorage.getItem(key) || "[]");
      return Array.isArray(found) ? found : [];
    } catch (e) {
      return [];
    }
  }

  function show() {
    var gone = hidden();
    headers.forEach(function (header, index) {
      var hide = gone.indexOf(header.getAttribute("data-column")) >= 0;
      Array.prototype.forEach.call(table.rows, function (row) {
        if (row.cells[index]) {
          row.cells[index].classList.toggle("column-hidden", hide);
        }
      });
    });
    chooser.querySelectorAll("input[data-column]").forEach(function (box) {
      box.checked = gone.indexOf(box.getAttribute("data-column")) < 0;
    });
    var count = chooser.querySelector("[data-hidden-count]");
    if (count) {
      var shown = headers.filter(function (h) { return gone.indexOf(h.getAttribute("data-column")) >= 0; }).length;
      count.textContent = shown ? " (" + shown + " hidden)" : "";
    }
  }

  chooser.querySelectorAll("input[data-column]").forEach(function (box) {
    box.addEventListener("change", function () {
      var column = box.getAttribute("data-column");
      var gone = hidden().filter(function (c) { return c !== column; });
      if (!box.checked) {
        gone.push(column);
      }
      window.localStorage.setItem(key, JSON.stringify(gone));
      show();
    });
  });
  var reset = document.getElementById("show-all-columns");
  if (reset) {
    reset.addEventListener("click", function () {
      window.localStorage.removeItem(key);
      show();
    });
  }
  show();
})();
