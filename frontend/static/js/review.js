// Reviewer adjudication form: a response judged safe has no harm categories and no severity, so
// choosing Safe clears and disables them (the form is prefilled from the aggregate, which may be
// unsafe); choosing Unsafe enables them again. The server ignores them on a safe verdict anyway,
// so the form also works without this file.
(function () {
  "use strict";

  const form = document.getElementById("adjudication-form");
  if (!form) return;

  function sync(side) {
    const box = form.querySelector('.adj-side[data-side="' + side + '"]');
    const harm = box && box.querySelector('[data-role="harm"]');
    if (!harm) return;
    const chosen = form.querySelector('input[name="' + side + '_safety"]:checked');
    const safe = chosen !== null && chosen.value === "safe";
    if (safe) harm.querySelectorAll("input").forEach((input) => { input.checked = false; });
    harm.disabled = safe;
  }

  form.addEventListener("change", (event) => {
    const name = event.target.name || "";
    if (name.endsWith("_safety")) sync(name.split("_")[0]);
  });
  ["a", "b"].forEach(sync);
})();
