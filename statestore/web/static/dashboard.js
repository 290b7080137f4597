// statestore dashboard: keeps the open page live from the change feed.
// Part of statestore (Apache-2.0); no third-party code, no build step.
//
// The page names its event stream (body[data-stream]) and the feed cursor it
// was read at (body[data-cursor]). Each change event patches what it names at
// once (an element with data-task / data-job / data-worker / data-atom /
// data-flow equal to its uuid takes the new status), then the page's content
// is fetched again and swapped in place, at most one fetch at a time, so
// counts, progress bars and new rows follow. The browser never polls: it
// fetches only when the server says something changed.
(function () {
  "use strict";
  const body = document.body;
  const stream = body.dataset.stream;
  const notice = document.getElementById("notice");
  const SUBJECTS = {
    "task.status": ["task", "task"],
    "job.status": ["job", "job"],
    "worker.status": ["worker", "worker"],
    "atom.state": ["atom", "atom"],
    "flow.state": ["flow", "flow"],
  };
  let refreshing = false;
  let again = false;
  let timer = null;

  function patch(change) {
    const subject = SUBJECTS[change.kind];
    if (!subject || !change[subject[1]] || change.new == null) return;
    const selector = "[data-" + subject[0] + '="' + CSS.escape(change[subject[1]]) + '"]';
    document.querySelectorAll(selector).forEach(function (element) {
      element.dataset.status = change.new;
      element.querySelectorAll(":scope > td > .status, :scope > .status").forEach(function (label) {
        label.dataset.status = change.new;
        label.textContent = change.new;
      });
    });
  }

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const response = await fetch(location.href, { cache: "no-store", credentials: "same-origin" });
      if (response.ok) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("content");
        const shown = document.getElementById("content");
        if (fresh && shown) {
          const scrolled = shown.querySelector(".graph");
          const at = scrolled ? [scrolled.scrollLeft, scrolled.scrollTop] : null;
          shown.replaceWith(fresh);
          const graph = fresh.querySelector(".graph");
          if (graph && at) { graph.scrollLeft = at[0]; graph.scrollTop = at[1]; }
        }
      }
    } catch (error) {
      // The server is away; the event stream reconnects by itself and a later change refreshes.
    } finally {
      refreshing = false;
      body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
      if (again) { again = false; schedule(); }
    }
  }

  function schedule() {
    if (timer !== null) return;
    timer = setTimeout(function () { timer = null; refresh(); }, 100);
  }

  function show(message, failed) {
    notice.textContent = message;
    notice.className = failed ? "error" : "";
    notice.hidden = false;
  }

  // EventSource reconnects by itself after a dropped connection (resuming
  // from the last event's id); after an answer it cannot retry (a restart
  // that refused it, say) it stops for good, so start over, from the last
  // cursor seen, backing off to ten seconds.
  let cursor = body.dataset.cursor || "";
  let wait = 500;
  function connect() {
    const url = new URL(stream, location.href);
    if (cursor) url.searchParams.set("after", cursor);
    const source = new EventSource(url);
    source.addEventListener("open", function () { body.dataset.live = "on"; wait = 500; });
    source.addEventListener("error", function () {
      body.dataset.live = "off";
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, wait);
        wait = Math.min(wait * 2, 10000);
      }
    });
    source.addEventListener("change", function (event) {
      cursor = event.lastEventId || cursor;
      patch(JSON.parse(event.data));
      schedule();
    });
    source.addEventListener("reset", function (event) {
      cursor = event.lastEventId || cursor;
      schedule();
    });
  }
  if (stream) connect();

  // Control forms post in the background and say what happened; the change
  // feed then updates the page. Without this script they post as plain forms.
  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("control")) return;
    event.preventDefault();
    // The form's own token: after a restart of the dashboard, the refreshed
    // content carries the new one while the page's head keeps the old.
    const field = form.elements.namedItem("csrf_token");
    const token = field ? field.value : "";
    let response = null;
    let answer = null;
    try {
      response = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": token, Accept: "application/json" },
      });
      answer = await response.json();
    } catch (error) {
      answer = null;
    }
    if (response === null) {
      show("the dashboard cannot be reached", true);
    } else if (response.ok) {
      show(answer && answer.length ? answer.length + " status changes" : "nothing changed (already in that status)", false);
    } else {
      show((answer && answer.error) || "refused: " + response.status, true);
    }
  });
})();
