// Added by the ocm Manager to OpenCode's web app. OpenCode's terminal needs a WebSocket,
// which the Manager cannot carry: when the app tries to start a terminal and the Manager
// answers 501, show the Manager's message on the page instead of an empty panel.
(function () {
  "use strict";
  var original = window.fetch;
  if (typeof original !== "function") return;
  var shown = null;

  function show(message) {
    if (shown && document.body.contains(shown)) return;
    shown = document.createElement("div");
    shown.setAttribute("role", "alert");
    shown.id = "ocm-terminal-notice";
    shown.style.cssText =
      "position:fixed;right:16px;bottom:16px;z-index:2147483647;max-width:420px;" +
      "padding:12px 40px 12px 14px;border-radius:8px;font:13px/1.4 system-ui,sans-serif;" +
      "background:#1f1f1f;color:#f5f5f5;box-shadow:0 4px 16px rgba(0,0,0,.3)";
    shown.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "\u00d7";
    close.setAttribute("aria-label", "Dismiss");
    close.style.cssText =
      "position:absolute;top:6px;right:8px;border:0;background:none;color:inherit;" +
      "font-size:18px;cursor:pointer";
    close.onclick = function () {
      shown.remove();
    };
    shown.appendChild(close);
    document.body.appendChild(shown);
  }

  window.fetch = function () {
    return original.apply(this, arguments).then(function (response) {
      var path = "";
      try {
        path = new URL(response.url).pathname.replace(/\/+$/, "");
      } catch (e) {}
      if (response.status === 501 && /\/pty(\/|$)/i.test(path + "/")) {
        response
          .clone()
          .json()
          .then(function (body) {
            show(body && body.message ? body.message : "OpenCode's terminal does not work here.");
          })
          .catch(function () {});
      }
      return response;
    });
  };
})();
