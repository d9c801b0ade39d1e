"use strict";
// Enhances the pages' no-script forms: the same step goes to the JSON API and its outcome is shown
// in place. The token is sent only when the user acts.
(function () {
  const result = document.getElementById("result");

  function show(message, ok) {
    result.textContent = message;
    result.className = ok ? "ok" : "error";
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let problem = {};
    if (!response.ok) {
      try { problem = await response.json(); } catch (e) { problem = {}; }
    }
    return { ok: response.ok, problem: problem };
  }

  function explain(problem) {
    if (problem.code === "TOKEN_EXPIRED") return "This link has expired. Please request a new one.";
    if (problem.code === "TOKEN_INVALID") return "This link is invalid or has already been used.";
    if (problem.code === "WEAK_PASSWORD") return problem.detail;
    if (problem.detail) return problem.detail;
    return "Something went wrong. Please try again.";
  }

  const verify = document.getElementById("verify");
  if (verify) {
    // Without script, the page's <noscript> form posts the token instead of this button.
    const token = new URLSearchParams(window.location.search).get("token") || "";
    verify.hidden = false;
    verify.addEventListener("click", async function () {
      verify.disabled = true;
      const outcome = await post("/api/v1/auth/verify-email/" + encodeURIComponent(token));
      if (outcome.ok) { show("Your email is confirmed. You can now sign in.", true); return; }
      show(explain(outcome.problem), false);
      verify.disabled = outcome.problem.code === "TOKEN_EXPIRED" || outcome.problem.code === "TOKEN_INVALID";
    });
  }

  const reset = document.getElementById("reset");
  if (reset) {
    reset.addEventListener("submit", async function (event) {
      event.preventDefault();
      const data = new FormData(reset);
      if (data.get("new_password") !== data.get("repeat")) {
        show("The two passwords differ.", false);
        return;
      }
      const outcome = await post("/api/v1/auth/reset-password",
        { token: data.get("token"), new_password: data.get("new_password") });
      if (outcome.ok) {
        reset.hidden = true;
        show("Your password has been changed. Every device was signed out; sign in again.", true);
        return;
      }
      show(explain(outcome.problem), false);
    });
  }
})();
