// Import form: the HH-RLHF axis field is shown, and required, only when the file holds HH-RLHF
// pairs (each HH file holds one axis). Without JavaScript the field is always shown and the
// server asks for it with a 422 that keeps the file and the other choices.
(function () {
  "use strict";
  var kind = document.getElementById("kind");
  var field = document.getElementById("hh-axis-field");
  var axis = document.getElementById("hh_axis");
  if (!kind || !field || !axis) {
    return;
  }
  function sync() {
    var shown = kind.value === field.getAttribute("data-shown-for-kind");
    field.hidden = !shown;
    field.style.display = shown ? "" : "none"; // .field sets display, which beats [hidden]
    axis.required = shown;
    axis.disabled = !shown; // a hidden choice is not sent
  }
  kind.addEventListener("change", sync);
  sync();
})();
