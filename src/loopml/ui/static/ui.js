// loopml web UI: draws the charts a page embeds as JSON, and wires a few keyboard and form
// helpers. No inline script anywhere: the pages' Content-Security-Policy forbids it.
"use strict";

function drawCharts() {
  const specs = document.querySelectorAll('script[type="application/json"][data-chart]');
  for (const node of specs) {
    const target = document.getElementById(node.dataset.chart);
    if (!target) continue;
    if (typeof window.Plotly === "undefined") {
      target.textContent = "Charts need the plotly package on the server (pip install 'loopml[ui]').";
      target.classList.add("muted");
      continue;
    }
    const spec = JSON.parse(node.textContent);
    window.Plotly.newPlot(target, spec.data, spec.layout,
                          {displaylogo: false, responsive: true});
  }
}

function wireForms() {
  for (const input of document.querySelectorAll("[data-autosubmit]")) {
    input.addEventListener("change", () => input.form.requestSubmit());
  }
  for (const all of document.querySelectorAll("[data-select-all]")) {
    all.addEventListener("change", () => {
      const boxes = document.querySelectorAll(`input[type=checkbox][name="${all.dataset.selectAll}"]`);
      for (const box of boxes) box.checked = all.checked;
    });
  }
}

function wireReview() {
  const form = document.getElementById("review-form");
  if (!form) return;
  let sent = false;
  const send = (button) => {
    if (sent || !button) return;
    sent = true;
    form.requestSubmit(button);
  };
  const label = document.getElementById("label");
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target === label) {
      if (event.key === "Enter") {
        event.preventDefault();
        if (label.value.trim()) send(document.getElementById("correct"));
      } else if (event.key === "Escape") {
        label.blur();
      }
      return;
    }
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
    if (event.key === "Enter" && target instanceof HTMLButtonElement && target !== document.getElementById("confirm")) return;
    if (event.key === "Enter" || event.key === "y") {
      event.preventDefault();
      send(document.getElementById("confirm"));
    } else if (event.key === "s") {
      event.preventDefault();
      send(document.getElementById("skip"));
    } else if (event.key === "c") {
      event.preventDefault();
      label.focus();
    } else if (/^[1-9]$/.test(event.key)) {
      const choice = form.querySelector(`button[data-key="${event.key}"]`);
      if (choice) {
        event.preventDefault();
        send(choice);
      }
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wireForms();
  wireReview();
  drawCharts();
});
