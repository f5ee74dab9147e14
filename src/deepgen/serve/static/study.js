// The rating page of a human study: start a rater, show one image at a time, send each
// answer and show the next. Answers are saved by the server before it replies.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const root = $("study");
  const name = encodeURIComponent(root.dataset.study);
  const exposure = parseInt(root.dataset.exposureMs || "0", 10);
  const meta = (n) => document.querySelector(`meta[name="deepgen-${n}"]`).content;
  const saved = `deepgen-rater-${root.dataset.study}`;
  let rater = null, token = null, item = null, shownAt = 0, busy = false;

  function fail(message) {
    $("error").textContent = message;
    $("error").hidden = false;
  }

  async function call(method, url, headers, body) {
    const response = await fetch(url, {
      method,
      headers: Object.assign({ "Content-Type": "application/json" }, headers),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
    return data;
  }

  function show(next) {
    $("progress").textContent = `${next.done} of ${next.total} answered`;
    if (next.finished) {
      $("rate").hidden = true;
      $("finished").hidden = false;
      root.dataset.state = "finished";
      sessionStorage.removeItem(saved);
      return;
    }
    item = next;
    $("phase").textContent = next.tutorial ? "Practice: you will be told the answer." : "";
    const img = $("image");
    img.onload = () => {
      shownAt = performance.now();
      busy = false;
      root.dataset.position = String(next.position);
      root.dataset.state = "ready";
      if (exposure) setTimeout(() => { img.style.visibility = "hidden"; }, exposure);
    };
    img.style.visibility = "visible";
    img.src = `/study/${name}/images/${next.image}.png`;
  }

  async function answer(value) {
    if (busy || !item) return;
    busy = true;
    root.dataset.state = "saving";
    $("error").hidden = true;
    const body = {
      rater, position: item.position, image: item.image, answer: value,
      response_ms: Math.round(performance.now() - shownAt),
    };
    try {
      const reply = await call("POST", `/api/study/${name}/judgements`, { "X-Token": token }, body);
      $("feedback").textContent = reply.feedback ? `The last one was ${reply.feedback}.` : "";
      show(reply.next);
    } catch (err) {
      busy = false;
      root.dataset.state = "ready";
      fail(`Not saved: ${err.message}. Please answer again.`);
    }
  }

  async function begin() {
    $("intro").hidden = true;
    $("rate").hidden = false;
    show(await call("GET", `/api/study/${name}/next`, { "X-Rater": rater, "X-Token": token }));
  }

  $("start").addEventListener("click", async () => {
    try {
      const reply = await call("POST", `/api/study/${name}/raters`,
        { "X-Session": meta("session"), "X-Token": meta("token") });
      rater = reply.rater;
      token = reply.token;
      sessionStorage.setItem(saved, JSON.stringify(reply));
      await begin();
    } catch (err) { fail(err.message); }
  });
  for (const id of ["answer-real", "answer-fake"]) {
    $(id).addEventListener("click", () => answer($(id).dataset.answer));
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "r") answer("real");
    if (e.key === "f") answer("fake");
  });
  const earlier = sessionStorage.getItem(saved);  // a reload continues the same rater
  if (earlier) {
    ({ rater, token } = JSON.parse(earlier));
    begin().catch((err) => fail(err.message));
  }
})();
