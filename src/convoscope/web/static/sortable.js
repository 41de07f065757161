/* A report table whose every row is on the page (guide-effectiveness: one row per guide, on its page and on the
   dashboard) sorts by a column when its header is clicked, again for the other way round. Numbers sort as numbers
   and empty cells (a rate without a denominator) last either way; text by code point, as the report orders its
   rows. A cell that shows its value otherwise (a rate as a percentage) sorts by its report cell, data-value.
   Only the page's order changes: the CSV keeps the report's. */
(function () {
  "use strict";

  function key(cell) {
    var given = cell.getAttribute("data-value");
    var text = (given !== null ? given : cell.textContent).trim();
    if (text === "") {
      return null;
    }
    var number = Number(text.replace(/,/g, ""));
    return isNaN(number) ? text : number;
  }

  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") {
      return a - b;
    }
    a = String(a);
    b = String(b);
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function sortBy(table, header, index) {
    var descending = header.getAttribute("aria-sort") === "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (x, y) {
      var a = key(x.cells[index]);
      var b = key(y.cells[index]);
      if (a === null || b === null) {
        return a === b ? 0 : a === null ? 1 : -1;
      }
      return descending ? compare(b, a) : compare(a, b);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  document.querySelectorAll("table[data-sortable]").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      var button = header.querySelector("button.sort");
      if (button) {
        button.addEventListener("click", function () { sortBy(table, header, index); });
      }
    });
  });
}());
