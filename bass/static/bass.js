// Keeps the steps the reader opened or closed as they were across live refreshes:
// while a build runs, htmx replaces its whole block every 2 s, which would otherwise
// reset every step to the server's default.
(function () {
  const chosen = new Map(); // id of an li.step → its details open?
  document.addEventListener("toggle", (event) => {
    const details = event.target;
    const step = details.parentElement;
    if (details.tagName === "DETAILS" && step && step.matches("li.step[id]")) {
      chosen.set(step.id, details.open);
    }
  }, true); // toggle does not bubble
  document.addEventListener("htmx:load", (event) => {
    for (const [id, open] of chosen) {
      const step = event.target.querySelector ? event.target.querySelector("#" + CSS.escape(id)) : null;
      const details = step && step.querySelector(":scope > details");
      if (details && details.open !== open) details.open = open;
    }
  });
})();

// A link to one step (#step-SPAN, from a grid cell) opens that step and shows it.
document.addEventListener("DOMContentLoaded", () => {
  const id = decodeURIComponent(location.hash.slice(1));
  const step = id.startsWith("step-") ? document.getElementById(id) : null;
  const details = step && step.querySelector(":scope > details");
  if (!details) return;
  details.open = true;
  step.classList.add("target");
  step.scrollIntoView({ block: "center" });
});
