// The latent explorer: sliders, random codes, interpolation and (2-D) the manifold map.
// Codes are in prior standard deviations; the server decodes them (POST .../decode).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const root = $("explorer");
  const run = root.dataset.run;
  const dim = parseInt(root.dataset.latentDim, 10);
  const cells = parseInt(root.dataset.cells, 10);
  const meta = (n) => document.querySelector(`meta[name="deepgen-${n}"]`).content;
  let code = new Array(dim).fill(0), a = null, b = null, pending = false, again = false;

  function label() {
    const select = $("label");
    return select ? parseInt(select.value, 10) : null;
  }

  async function decode(codes) {
    const response = await fetch(`/api/explore/${run}/decode`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Session": meta("session"), "X-Token": meta("token") },
      body: JSON.stringify({ codes, label: label() }),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
    return data.images;
  }

  async function refresh() {  // one request in flight; the newest code wins
    if (pending) { again = true; return; }
    pending = true;
    root.dataset.state = "decoding";
    const asked = code.slice();
    try {
      const [image] = await decode([asked]);
      $("decoded").src = image;
      $("code").textContent = asked.map((v) => v.toFixed(2)).join(", ");
      root.dataset.decoded = JSON.stringify(asked);
    } catch (err) {
      $("code").textContent = `error: ${err.message}`;
    }
    pending = false;
    if (again) { again = false; refresh(); } else root.dataset.state = "ready";
  }

  function setCode(values) {
    code = values.slice();
    for (const slider of document.querySelectorAll("input[data-dim]")) {
      slider.value = String(code[parseInt(slider.dataset.dim, 10)]);
    }
    refresh();
  }

  function gaussian() {  // Box-Muller
    const u = 1 - Math.random(), v = Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  for (const slider of document.querySelectorAll("input[data-dim]")) {
    slider.addEventListener("input", () => {
      code[parseInt(slider.dataset.dim, 10)] = parseFloat(slider.value);
      refresh();
    });
  }
  $("random").addEventListener("click", () => {
    setCode(code.map(() => Math.max(-3, Math.min(3, Math.round(gaussian() * 100) / 100))));
  });
  if ($("label")) $("label").addEventListener("change", refresh);
  $("mark-a").addEventListener("click", () => { a = code.slice(); });
  $("mark-b").addEventListener("click", () => { b = code.slice(); });
  if ($("encode-pair")) {
    $("encode-pair").addEventListener("click", async () => {
      const seed = Math.floor(Math.random() * 1e6);
      const response = await fetch(`/api/explore/${run}/test-codes?count=2&seed=${seed}`);
      const data = await response.json();
      if (!response.ok) { $("strip").textContent = data.detail; return; }
      [a, b] = data.codes;
      if (data.labels && $("label")) $("label").value = String(data.labels[0]);
      setCode(a);
    });
  }
  $("interpolate").addEventListener("click", async () => {
    if (!a || !b) { $("strip").textContent = "mark A and B first"; return; }
    const steps = 10;
    const codes = [];
    for (let i = 0; i < steps; i++) {
      const t = i / (steps - 1);
      codes.push(a.map((v, j) => (1 - t) * v + t * b[j]));
    }
    const images = await decode(codes);
    $("strip").replaceChildren(...images.map((src, i) => {
      const img = document.createElement("img");
      img.src = src;
      img.alt = `step ${i + 1} of ${steps}`;
      img.width = 56;
      return img;
    }));
  });
  if ($("manifold")) {
    $("manifold").addEventListener("click", (e) => {
      const box = e.target.getBoundingClientRect();
      const cx = Math.min(cells - 1, Math.floor((e.clientX - box.left) / box.width * cells));
      const cy = Math.min(cells - 1, Math.floor((e.clientY - box.top) / box.height * cells));
      setCode([-3 + 6 * cx / (cells - 1), 3 - 6 * cy / (cells - 1)]);
    });
  }
  refresh();
})();
