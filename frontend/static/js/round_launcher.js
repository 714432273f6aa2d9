// Round launcher: a second click (or Enter) while the first submit is on its way would create a
// second round; only the first submit goes through. Buttons are not disabled, because a disabled
// button's name/value (launch=1 or launch=0) would be left out of the form.
(function () {
  "use strict";
  var form = document.getElementById("launcher");
  if (!form) { return; }
  var sent = false;
  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }
    sent = true;
    form.setAttribute("aria-busy", "true");
  });
  // Coming back with the browser's Back button shows the page from cache: allow a new submit.
  window.addEventListener("pageshow", function () { sent = false; form.removeAttribute("aria-busy"); });
})();
