// The pages work without this script; it only adds live lists and copy buttons.
"use strict";

// Live regions ([data-live] with an id): every 2 s ask the page's JSON twin for the version
// of its data; when it differs from the one the page was drawn from, fetch the page again
// and swap those regions in place (forms elsewhere keep what was typed; focus stays on its
// control). Signed out meanwhile (the token was rotated): go to the sign-in page, unless a
// form holds something typed and not sent, which leaving would lose: then say so on the page
// and stop asking. A Manager that does not answer is said on the page until it does again.
(function live() {
  const main = document.querySelector("main[data-version]");
  if (!main || !document.querySelector("[data-live]")) return;
  let busy = false;
  let timer = 0;

  function unsentInput() {
    return Array.from(document.querySelectorAll("form input, form textarea")).some((field) =>
      ["text", "url", "search", "textarea"].includes(field.type) && !field.readOnly
        && field.value.trim() !== "");
  }

  function signedOut() {
    if (!unsentInput()) { location.assign("/signin"); return; }
    clearInterval(timer);
    const banner = document.createElement("p");
    banner.className = "message error";
    banner.id = "signed-out";
    banner.setAttribute("role", "alert");
    banner.append(
      "You are not signed in any more: the Manager token was rotated, or this browser signed"
      + " out. What you typed below is still here and was not sent: copy it, then ",
    );
    const link = document.createElement("a");
    link.href = "/signin";
    link.textContent = "sign in again";
    banner.append(link, ".");
    main.prepend(banner);
  }

  function unreachable(away) {
    const shown = document.getElementById("unreachable");
    if (!away) { if (shown) shown.remove(); return; }
    if (shown) return;
    const banner = document.createElement("p");
    banner.className = "message error";
    banner.id = "unreachable";
    banner.setAttribute("role", "alert");
    banner.textContent = "The Manager is not answering (stopped or restarting), so this page"
      + " may be out of date; it updates by itself once the Manager is back.";
    main.prepend(banner);
  }

  function focusKey(control) {
    return [control.tagName, control.getAttribute("href"), control.getAttribute("name"),
      control.textContent.trim()].join("\n");
  }

  async function refresh() {
    const response = await fetch(location.pathname, {
      headers: { Accept: "text/html" }, cache: "no-store",
    });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live]")) {
      const replacement = fresh.getElementById(region.id);
      if (!replacement) continue;
      // Focus inside the region (a keyboard user on a row's link) moves to the same control
      // in the new one; otherwise it would fall back to the page's start at every update.
      const active = document.activeElement;
      const focused = region.contains(active) ? focusKey(active) : null;
      const node = document.importNode(replacement, true);
      region.replaceWith(node);
      if (focused) {
        const same = Array.from(node.querySelectorAll("a, button, input, select, textarea"))
          .find((control) => focusKey(control) === focused);
        if (same) same.focus({ preventScroll: true });
      }
    }
    main.dataset.version = response.headers.get("X-Ocm-Data-Version") || "";
  }

  async function poll() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(location.pathname + "?format=json", {
        headers: { Accept: "application/json" }, cache: "no-store",
      });
      if (response.status === 401) { signedOut(); return; }
      if (!response.ok) return;
      if (response.headers.get("X-Ocm-Data-Version") !== main.dataset.version) await refresh();
      unreachable(false);
    } catch (error) {
      // The Manager stopped or restarting: try again at the next tick, and say so meanwhile,
      // or a clone it was running would show as 'cloning' for as long as it is away.
      unreachable(true);
    } finally {
      busy = false;
    }
  }

  timer = setInterval(poll, 2000);
})();

// Copy buttons: [data-copy] names the input whose value to copy.
for (const button of document.querySelectorAll("[data-copy]")) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const field = document.querySelector(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(field.value);
    } catch (error) {
      // No clipboard API outside HTTPS/localhost: select and let the browser copy.
      field.focus();
      field.select();
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });
}
