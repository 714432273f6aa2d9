// Red-team intake: Ctrl+Enter (or Cmd+Enter) in the prompt sends the form, so a red-teamer can
// write prompt after prompt without the mouse. Without JavaScript the form works the same.
(function () {
  "use strict";
  var form = document.getElementById("red-team-form");
  var prompt = document.getElementById("prompt");
  if (!form || !prompt) { return; }
  prompt.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (typeof form.requestSubmit === "function") { form.requestSubmit(); } else { form.submit(); }
    }
  });
})();
