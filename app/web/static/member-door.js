// The member app's door page: load the next minute's code when it is due (and when the phone
// wakes up after it was due). The page says when, in seconds (data-refresh-in).
(function () {
  var el = document.querySelector("[data-refresh-in]");
  if (!el) return;
  var ms = (parseInt(el.getAttribute("data-refresh-in"), 10) || 60) * 1000 + 300;
  var due = Date.now() + ms;
  setTimeout(function () { location.reload(); }, ms);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && Date.now() >= due) location.reload();
  });
})();
