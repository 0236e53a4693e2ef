// Live update without reload: every `change` from the server (a new artifact, an agent's report,
// an event) re-fetches the server-rendered content; one fetch in flight at most. A slow timer
// covers what has no event (ages).
(function () {
  var live = document.getElementById("live");
  var content = document.getElementById("content");
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch("?part=content", { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        content.innerHTML = html;
        live.textContent = "live · updated " + new Date().toLocaleTimeString();
      })
      .catch(function (e) { live.textContent = "update failed: " + e.message; })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  if (window.EventSource) {
    var es = new EventSource("changes");
    es.addEventListener("change", refresh);
    es.onopen = function () { live.textContent = "live"; };
    es.onerror = function () { live.textContent = "reconnecting to the event stream…"; };
  }
  setInterval(refresh, 10000);
})();
