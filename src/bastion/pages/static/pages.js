// Enhancements only: every page works without this script, and the forms post as they are.
// It moves focus to an error summary, offers to show a password while it is typed, ticks the
// password rules off as they are met, keeps a form from being sent twice, and shows times in
// the reader's own time zone. Its few words come from the page itself (data attributes), so
// every string stays in the translation catalogs.

const summary = document.querySelector("[data-error-summary]");
if (summary && document.activeElement !== summary) {
  summary.focus();
}

const lang = document.documentElement.lang || undefined;
for (const time of document.querySelectorAll("time[datetime]")) {
  const moment = new Date(time.getAttribute("datetime"));
  if (!Number.isNaN(moment.getTime())) {
    time.title = time.textContent;
    time.textContent = new Intl.DateTimeFormat(lang, {
      dateStyle: "medium",
      timeStyle: "short",
    }).format(moment);
  }
}

for (const form of document.querySelectorAll("form")) {
  form.addEventListener("submit", () => {
    // Disabled after the browser has taken the form's fields, so the post is unchanged.
    setTimeout(() => {
      for (const button of form.querySelectorAll("button[type=submit]")) {
        button.disabled = true;
      }
    }, 0);
  });
}

const toggle = document.body.dataset.showPassword;
const hide = document.body.dataset.hidePassword;
if (toggle && hide) {
  for (const input of document.querySelectorAll("input[type=password]")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "show-password";
    button.textContent = toggle;
    button.setAttribute("aria-controls", input.id);
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => {
      const shown = input.type === "password";
      input.type = shown ? "text" : "password";
      button.textContent = shown ? hide : toggle;
      button.setAttribute("aria-pressed", String(shown));
    });
    input.insertAdjacentElement("afterend", button);
  }
}

// The rules a browser can check by itself; the server checks them all (common passwords too).
const checks = {
  too_short: (value, list) => value.length >= Number(list.dataset.minLength || 0),
  no_uppercase: (value) => /\p{Lu}/u.test(value),
  no_lowercase: (value) => /\p{Ll}/u.test(value),
  no_digit: (value) => /\p{Nd}/u.test(value),
};
for (const list of document.querySelectorAll("[data-password-rules]")) {
  const input = document.getElementById(list.dataset.passwordRules);
  if (!input) continue;
  input.addEventListener("input", () => {
    for (const item of list.querySelectorAll("[data-rule]")) {
      const check = checks[item.dataset.rule];
      if (!check) continue;
      const met = check(input.value, list);
      item.classList.toggle("met", met);
      if (met) item.classList.remove("broken");
    }
  });
}

// WebAuthn: the one thing the pages cannot do without script. A button marked data-webauthn
// asks its form's page for options (the same form, posted with data-options-intent), runs the
// ceremony, puts the credential's JSON in the form's `credential` field and posts the form.
// Pages hide these buttons (`hidden`) until this script finds WebAuthn in the browser.
const webauthn =
  typeof window.PublicKeyCredential === "function" &&
  typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";
if (webauthn) {
  for (const element of document.querySelectorAll("[data-needs-webauthn]")) {
    element.hidden = false;
  }
}

async function ceremony(button) {
  const form = button.form;
  const body = new URLSearchParams(new FormData(form));
  body.set("intent", button.dataset.optionsIntent);
  const response = await fetch(form.action, {
    method: "POST",
    body,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) {
    if (button.dataset.fallback === "submit") {
      form.submit(); // the page answers with what is missing (a "Confirm it's you" step)
      return true;
    }
    return false;
  }
  const options = await response.json();
  const credential =
    button.dataset.webauthn === "create"
      ? await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
        })
      : await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
        });
  if (!credential) return false;
  form.elements.namedItem("credential").value = JSON.stringify(credential.toJSON());
  form.submit();
  return true;
}

for (const button of document.querySelectorAll("button[data-webauthn]")) {
  button.addEventListener("click", async () => {
    const status = button.form.querySelector("[data-webauthn-status]");
    if (status) status.textContent = "";
    button.disabled = true;
    let done = false;
    try {
      done = await ceremony(button);
    } catch {
      done = false;
    }
    if (!done) {
      button.disabled = false;
      if (status) status.textContent = button.dataset.failed || "";
    }
  });
}
