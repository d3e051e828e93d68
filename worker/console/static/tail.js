// The live tail: new decisions from /tail/events, inserted as text (never as HTML).
(function () {
  "use strict";
  var table = document.getElementById("tail");
  if (!table || !window.EventSource) { return; }
  var body = table.tBodies[0];
  var status = document.getElementById("tail-status");
  function cell(row, text, href) {
    var td = row.insertCell(-1);
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    return td;
  }
  var source = new EventSource(table.getAttribute("data-source"));
  source.addEventListener("open", function () { status.textContent = "Live: new decisions appear at the top."; });
  source.addEventListener("error", function () { status.textContent = "Reconnecting…"; });
  source.addEventListener("decision", function (message) {
    var d = JSON.parse(message.data);
    var row = body.insertRow(0);
    cell(row, new Date(d.at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC");
    cell(row, d.delivery, "/decisions/" + encodeURIComponent(d.delivery)).className = "mono";
    cell(row, d.conversation);
    cell(row, d.event);
    cell(row, d.rules.length ? d.rules.join(", ") : "no rule");
    while (body.rows.length > 200) { body.deleteRow(-1); }
  });
}());
