// The live activity view: rows pushed over server-sent events go on top of the table.
// Everything else in the console works without script.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var status = document.getElementById("live-status");
  var body = document.getElementById("activity-rows");
  if (!status || !body || !window.EventSource) { return; }
  var source = new EventSource(status.getAttribute("data-stream"));
  source.addEventListener("open", function () { status.textContent = "Live view: on — new calls appear at the top."; });
  source.addEventListener("end", function () {
    source.close(); // the session ended (signed out, expired, or its key revoked)
    status.textContent = "Live view: stopped — your session has ended. Reload to sign in again.";
  });
  source.addEventListener("gap", function () {
    status.textContent = "Live view: on — more calls arrived at once than the table shows; reload the page (or page back) to see them all.";
  });
  source.addEventListener("error", function () { status.textContent = "Live view: reconnecting… (reload if this persists)"; });
  source.addEventListener("row", function (event) {
    var holder = document.createElement("tbody");
    holder.innerHTML = event.data; // rendered and escaped by the hub's templates
    var row = holder.firstElementChild;
    if (!row || document.querySelector('tr[data-id="' + row.getAttribute("data-id") + '"]')) { return; }
    row.classList.add("fresh");
    body.insertBefore(row, body.firstChild);
    var empty = document.getElementById("activity-empty");
    if (empty) { empty.remove(); }
    while (body.children.length > 500) { body.removeChild(body.lastChild); }
  });
});
