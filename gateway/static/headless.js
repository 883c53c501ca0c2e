// eid-gateway login page: starts a poll-based login (BankID headless or CIBA) through the gateway's
// JSON API and shows its progress. It talks only to the gateway; the provider's request id, client
// assertions and tokens never reach this page.
"use strict";
(function () {
  const root = document.getElementById("login");
  if (!root) return;
  const cfg = root.dataset;
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const qr = $("qr");
  const openApp = $("open-app");
  const openAppAlt = $("open-app-alt");
  let timer = null;
  let qrFrame = null;
  let frameNo = 0;
  let stopped = false;
  // "autostart" once the person opened the app on this device: the messages then say so (RFA13/RFA15).
  let mode = "qr";

  function show(id) {
    for (const step of document.querySelectorAll(".step")) step.hidden = step.id !== id;
  }

  function autostartLinks(token) {
    const t = encodeURIComponent(token);
    return ["bankid:///?autostarttoken=" + t + "&redirect=null",
            "https://app.bankid.com/?autostarttoken=" + t + "&redirect=null"];
  }

  function render(view) {
    if (view.message) status.textContent = view.message;
    const data = view.acr_data || {};
    if (qr && data.qrData && data.qrData !== qrFrame) {
      qrFrame = data.qrData;
      frameNo += 1;
      qr.src = "/_auth/headless/qr.svg?frame=" + frameNo;
      qr.hidden = false;
    }
    if (openApp && data.autoStartToken) {
      const [app, universal] = autostartLinks(data.autoStartToken);
      openApp.href = universal;
      openAppAlt.href = app;
      openApp.hidden = false;
      openAppAlt.hidden = false;
    }
    if (view.status === "complete" && view.redirect) {
      stopped = true;
      window.location.assign(view.redirect);
    } else if (view.status && view.status !== "pending") {
      finish(view.message);
    }
  }

  function finish(message) {
    stopped = true;
    clearTimeout(timer);
    $("final").textContent = message;
    show("done");
    $("final").focus();
  }

  async function call(method, url, body) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const view = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, view };
  }

  async function poll() {
    if (stopped) return;
    try {
      const { ok, view } = await call("GET", "/_auth/headless/status?mode=" + mode);
      if (!ok) {
        finish(view.message || cfg.startFailed);
        return;
      }
      render(view);
      if (view.status === "pending") timer = setTimeout(poll, view.poll_after_ms || 1000);
    } catch (err) {
      status.textContent = cfg.connection;
      timer = setTimeout(poll, 2000);
    }
  }

  async function start(loginHint) {
    stopped = false;
    qrFrame = null;
    mode = "qr";
    for (const el of [qr, openApp, openAppAlt]) if (el) el.hidden = true;
    show("wait");
    const body = { provider: cfg.provider, rd: cfg.rd };
    if (loginHint !== undefined) body.login_hint = loginHint;
    try {
      const { ok, view } = await call("POST", "/_auth/headless/start", body);
      if (!ok) {
        if (cfg.flow === "ciba" && view.error === "bad_request") {
          show("identify");
          $("form-error").textContent = view.message;
          $("login-hint").focus();
          return;
        }
        finish(view.message || cfg.startFailed);
        return;
      }
      render(view);
      timer = setTimeout(poll, view.poll_after_ms || 1000);
    } catch (err) {
      finish(cfg.startFailed);
    }
  }

  for (const link of [openApp, openAppAlt]) {
    if (link) link.addEventListener("click", () => { mode = "autostart"; });
  }
  $("cancel").addEventListener("click", async () => {
    stopped = true;
    clearTimeout(timer);
    try {
      const { view } = await call("POST", "/_auth/headless/cancel", {});
      finish(view.message || "");
    } catch (err) {
      finish("");
    }
  });
  $("retry").addEventListener("click", () => {
    if (cfg.flow === "ciba") {
      show("identify");
      $("login-hint").focus();
    } else {
      start();
    }
  });
  const form = $("identify");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      start($("login-hint").value.replace(/[\s-]/g, ""));
    });
    show("identify");
  } else {
    start();
  }
})();
