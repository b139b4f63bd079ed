/* fitclub pages: a little vanilla JavaScript, progressive enhancement only.
 * - the desk search shows results as you type (a partial HTML endpoint);
 * - keys on the desk: ↑/↓ choose, Enter opens, Shift+Enter checks in, Esc clears, / focuses;
 * - today's check-ins refresh every few seconds;
 * - forms marked data-fetch post with fetch and show the answer in place;
 * - the playbook editor previews the draft for a member as you type;
 * - a form is submitted once (a second click while it is on its way does nothing).
 * Everything works without it: the forms post and redirect, the search has a button.
 */
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function request(url, options) {
    options = options || {};
    var headers = options.headers || {};
    headers["X-Requested-With"] = "fetch";
    if (options.method && options.method !== "GET") {
      headers["X-CSRF-Token"] = csrf;
    }
    options.headers = headers;
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      if (response.status === 401) {
        window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
      }
      return response.text().then(function (text) {
        return { ok: response.ok, status: response.status, html: text };
      });
    });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments, self = this;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(self, args); }, ms);
    };
  }

  function newKey() {
    if (window.crypto && window.crypto.getRandomValues) {
      var bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }
    return String(Date.now()) + String(Math.random()).slice(2);
  }

  /* ---- forms posted in place ---------------------------------------------------------- */

  function postInPlace(form, submitter) {
    var data = new FormData(form);
    if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
    if (!data.get("key")) { data.set("key", newKey()); }
    var target = document.querySelector(form.getAttribute("data-target") || "#decision");
    form.setAttribute("aria-busy", "true");
    return request(form.getAttribute("action"), { method: "POST", body: new URLSearchParams(data) })
      .then(function (answer) {
        if (target) { target.innerHTML = answer.html; }
        refreshEvents();
      })
      .catch(function () {
        if (target) { target.innerHTML = '<p class="flash error" role="alert">No connection to the server; try again.</p>'; }
      })
      .then(function () { form.removeAttribute("aria-busy"); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    // an input named "method" or "action" shadows form.method / form.action: read attributes
    if ((form.getAttribute("method") || "").toLowerCase() !== "post") { return; }
    if (form.getAttribute("aria-busy") === "true") {  // submit once
      event.preventDefault();
      return;
    }
    if (form.hasAttribute("data-fetch")) {
      event.preventDefault();
      postInPlace(form, event.submitter);
      return;
    }
    form.setAttribute("aria-busy", "true");
  });

  window.addEventListener("pageshow", function () {  // back from the history cache
    document.querySelectorAll("form[aria-busy]").forEach(function (f) { f.removeAttribute("aria-busy"); });
  });

  /* ---- desk: search as you type, keys -------------------------------------------------- */

  var search = document.getElementById("q");
  var results = document.getElementById("results");
  var lastQuery = search ? search.value.trim() : "";
  var searchSeq = 0;

  function items() {
    return results ? Array.prototype.slice.call(results.querySelectorAll("li.result")) : [];
  }

  function selected() {
    return results ? results.querySelector("li.result.selected") : null;
  }

  function select(index) {
    var list = items();
    if (!list.length) { return; }
    index = Math.max(0, Math.min(index, list.length - 1));
    list.forEach(function (li, i) {
      li.classList.toggle("selected", i === index);
      if (i === index) { li.setAttribute("aria-current", "true"); } else { li.removeAttribute("aria-current"); }
    });
    list[index].scrollIntoView({ block: "nearest" });
  }

  var runSearch = debounce(function () {
    var q = search.value.trim();
    if (q === lastQuery) { return; }
    lastQuery = q;
    var seq = ++searchSeq;
    request(search.getAttribute("data-search-url") + "?q=" + encodeURIComponent(q))
      .then(function (answer) {
        if (seq !== searchSeq) { return; }  // an older answer arriving late
        results.innerHTML = answer.html;
        results.setAttribute("data-query", q);
        var status = document.getElementById("results-status");
        var summary = results.querySelector(".count, .empty, .hint");
        if (status) { status.textContent = summary ? summary.textContent : ""; }
        if (window.history && window.history.replaceState) {
          window.history.replaceState(null, "", q ? "/desk?q=" + encodeURIComponent(q) : "/desk");
        }
      });
  }, 150);

  if (search && results) {
    results.setAttribute("data-query", lastQuery);
    search.addEventListener("input", runSearch);
    search.addEventListener("keydown", function (event) {
      var list = items();
      var current = list.indexOf(selected());
      if (event.key === "ArrowDown") {
        event.preventDefault();
        select(current + 1);
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        select(current - 1);
      } else if (event.key === "Escape") {
        search.value = "";
        runSearch();
      } else if (event.key === "Enter") {
        var fresh = results.getAttribute("data-query") === search.value.trim();
        var chosen = selected();
        if (!fresh || !chosen) { return; }  // not searched yet: submit the search form
        event.preventDefault();
        if (event.shiftKey) {
          var form = chosen.querySelector("form.checkin");
          if (form) { postInPlace(form, null); }
        } else {
          window.location.href = chosen.getAttribute("data-href");
        }
      }
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || !search) { return; }
    var tag = (document.activeElement && document.activeElement.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
    event.preventDefault();
    search.focus();
    search.select();
  });

  /* ---- desk: today's check-ins, refreshed ----------------------------------------------- */

  var events = document.getElementById("events");

  function refreshEvents() {
    if (!events) { return; }
    request(events.getAttribute("data-refresh-url")).then(function (answer) {
      if (answer.ok) { events.innerHTML = answer.html; }
    });
  }

  if (events) {
    var seconds = parseInt(events.getAttribute("data-refresh-seconds"), 10) || 10;
    setInterval(function () {
      if (!document.hidden) { refreshEvents(); }
    }, seconds * 1000);
  }

  /* ---- playbook: live preview of the draft ------------------------------------------------ */

  var editor = document.getElementById("playbook-form");
  var preview = editor ? document.querySelector(editor.getAttribute("data-preview-target")) : null;

  function updatePreview() {
    var data = new FormData(editor);
    var body = new URLSearchParams();
    ["member_id", "subject_template", "body_template"].forEach(function (name) {
      body.set(name, data.get(name) || "");
    });
    preview.setAttribute("aria-busy", "true");
    request(editor.getAttribute("data-preview-url"), { method: "POST", body: body })
      .then(function (answer) {
        preview.innerHTML = answer.html;
        preview.removeAttribute("aria-busy");
      });
  }

  if (editor && preview) {
    var later = debounce(updatePreview, 400);
    document.querySelectorAll("[data-preview-input]").forEach(function (el) {
      el.addEventListener("input", later);
      el.addEventListener("change", later);
    });
    var button = document.getElementById("preview-button");
    if (button) { button.addEventListener("click", updatePreview); }
    updatePreview();
  }
})();
