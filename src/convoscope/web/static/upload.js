// The upload form (issue 28): a file over the server's limit is refused here, with the server's own words,
// before the browser sends it; the server refuses it too (413), but only once it has come.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("upload-file");
  const message = document.getElementById("upload-error");

  function check() {
    const limit = Number(form.dataset.maxBytes);
    const file = input.files && input.files[0];
    const over = file && file.size > limit;
    message.hidden = !over;
    if (over) {
      message.textContent = `The file is ${file.size.toLocaleString("en-US")} bytes; upload at most ` +
        `${limit.toLocaleString("en-US")} at a time; split the file, or store it with 'convoscope ingest FILE', ` +
        "which takes any size.";
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
    return !over;
  }

  input.addEventListener("change", check);
  form.addEventListener("submit", (event) => {
    if (!check()) event.preventDefault();
  });
})();
