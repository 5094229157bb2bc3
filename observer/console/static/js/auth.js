// Signing in, when the observer has authentication on: OpenID Connect authorization code flow with PKCE
// (RFC 7636) against the issuer the observer trusts, as a public client (no secret in a page). The access token
// lives in sessionStorage (this tab only) and travels as a bearer token on every API call.
import { configureAuth } from "./api.js";
import { announce, field, h } from "./dom.js";

const STORE = "observer-console";
const CALLBACK_PATH = "/";

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

function randomString(length = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(length)));
}

async function challengeOf(verifier) {
  return b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

const load = () => JSON.parse(sessionStorage.getItem(STORE) || "{}");
const keep = (value) => sessionStorage.setItem(STORE, JSON.stringify(value));

function token() {
  const saved = load();
  return saved.accessToken && saved.expiresAt > Date.now() ? saved.accessToken : null;
}

async function discover(issuer) {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(15000) });
  if (!response.ok) throw new Error(`the identity provider ${issuer} answered ${response.status} for its metadata`);
  const metadata = await response.json();
  if (!metadata.authorization_endpoint || !metadata.token_endpoint) {
    throw new Error(`the identity provider ${issuer} advertises no authorization or token endpoint`);
  }
  return metadata;
}

async function signIn(auth) {
  const metadata = await discover(auth.issuer);
  const verifier = randomString(48);
  const state = randomString(16);
  keep({ verifier, state, returnTo: location.hash });
  const url = new URL(metadata.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: auth.clientId,
    redirect_uri: location.origin + CALLBACK_PATH,
    scope: auth.scopes,
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

async function exchange(auth, query, saved) {
  if (!auth.clientId) throw new Error("this console has no OAuth client configured to redeem a code");
  if (query.has("error")) throw new Error(query.get("error_description") || query.get("error"));
  if (!saved.state || query.get("state") !== saved.state) {
    throw new Error("the sign-in answer does not match the request this tab sent; sign in again");
  }
  const metadata = await discover(auth.issuer);
  const response = await fetch(metadata.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: query.get("code"),
      redirect_uri: location.origin + CALLBACK_PATH,
      client_id: auth.clientId,
      code_verifier: saved.verifier,
    }),
    signal: AbortSignal.timeout(15000),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) {
    throw new Error(`the identity provider refused the code: ${body.error_description || body.error || response.status}`);
  }
  const lifetime = Number(body.expires_in) > 0 ? Number(body.expires_in) : 300;
  keep({ accessToken: body.access_token, expiresAt: Date.now() + lifetime * 1000 });
}

/**
 * The issuer's answer on the redirect back (`?code=..&state=..` or `?error=..`). Whatever it was, the query
 * leaves the address bar (a reload must not replay a spent code, a bookmark must not keep one) and the view the
 * user signed in from comes back; a failure is announced and leaves the tab signed out, with Sign in offered.
 */
async function finishSignIn(auth, query) {
  const saved = load();
  try {
    await exchange(auth, query, saved);
  } catch (error) {
    keep(saved.accessToken ? { accessToken: saved.accessToken, expiresAt: saved.expiresAt } : {});
    announce(`Sign-in failed: ${error.message}`, "error");
  } finally {
    history.replaceState(null, "", CALLBACK_PATH + (saved.returnTo || location.hash));
  }
}

function signOut() {
  sessionStorage.removeItem(STORE);
  location.reload();
}

function signInPanel(auth, session) {
  const main = document.getElementById("main");
  if (auth.clientId) {
    const button = h("button", { type: "button", class: "primary" }, "Sign in");
    button.addEventListener("click", () => signIn(auth).catch((error) => announce(error.message, "error")));
    main.replaceChildren(h("section", { class: "signin" }, h("h2", {}, "Sign in"),
      h("p", {}, `This observer needs a token from ${auth.issuer}.`), button));
    button.focus();
    return;
  }
  // No OAuth client configured for the console (OBSERVER_CONSOLE_CLIENT_ID): a token obtained elsewhere.
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true });
  const form = h("form", { class: "signin", "aria-label": "Access token" }, h("h2", {}, "Access token"),
    h("p", {}, "Authentication is on and the console has no OAuth client configured; paste a bearer token."),
    field("Bearer token", input), h("button", { type: "submit", class: "primary" }, "Use token"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    keep({ accessToken: input.value.trim(), expiresAt: Date.now() + 3600 * 1000 });
    location.reload();
  });
  main.replaceChildren(form);
  session.replaceChildren();
}

/** Signs in if needed. Resolves true when the views may render (auth off, or a token at hand). */
export async function start(session) {
  const response = await fetch("/console/config.json", { signal: AbortSignal.timeout(15000) });
  const { auth } = await response.json();
  if (!auth.enabled) {
    session.replaceChildren(h("span", { class: "badge" }, "Authentication off"));
    return true;
  }
  const query = new URLSearchParams(location.search);
  if (query.has("code") || query.has("error")) await finishSignIn(auth, query);
  let ended = false;
  configureAuth(token, () => {
    // Every request in flight gets the 401: the panel is drawn once, so a token being typed into it stays.
    if (ended) return;
    ended = true;
    sessionStorage.removeItem(STORE);
    announce("Your session has ended: sign in again.", "error");
    signInPanel(auth, session);
  });
  if (!token()) {
    signInPanel(auth, session);
    return false;
  }
  const out = h("button", { type: "button" }, "Sign out");
  out.addEventListener("click", signOut);
  session.replaceChildren(h("span", { class: "badge" }, "Signed in"), out);
  return true;
}
