// Built-in auth through the unmodified `convex` npm client, the way
// `@convex-dev/auth`'s React client drives it: `auth:signIn` over the
// WebSocket for sign-in steps, over HTTP (no Authorization) for refresh,
// `auth:signOut` over the WebSocket; and the whole OAuth round trip against
// a real OpenID Connect provider (`oidc-provider`, started here), with its
// refusals. Run by `runtime/server/tests/all/conformance.rs`, which deploys
// the test guest with built-in auth (password and an OIDC provider `okta`)
// and sets CAPSTAN_URL, OIDC_PORT and SITE_URL.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { browser, loginStep, signingKey, startProvider } from "./oidc.mjs";

const url = process.env.CAPSTAN_URL;
const port = Number(process.env.OIDC_PORT);
const site = process.env.SITE_URL;
assert.ok(url && port && site, "CAPSTAN_URL, OIDC_PORT and SITE_URL are set");
const provider = await startProvider(port, [signingKey("k1")], 3600, [
  {
    client_id: "capstan-oauth",
    client_secret: "oauth-test-secret",
    redirect_uris: [`${url}/api/auth/callback/okta`],
    grant_types: ["authorization_code"],
    response_types: ["code"],
  },
]);
const clients = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await provider.stop();
});

function client() {
  const c = new ConvexClient(url);
  clients.push(c);
  return c;
}

/** Resolves with the first value of `auth:whoami` that satisfies `ok`. */
function until(c, ok, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    let last;
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`whoami never satisfied the test; the last was ${JSON.stringify(last)}`));
    }, timeoutMs);
    const unsubscribe = c.onUpdate(anyApi.auth.whoami, {}, (value) => {
      last = value;
      if (ok(value)) {
        clearTimeout(timer);
        unsubscribe();
        resolve(value);
      }
    });
  });
}

/** A client authenticated with the tokens a sign-in returned, refreshing
 * through HTTP like the React client. */
function signedInClient(tokens) {
  const c = client();
  let current = tokens;
  c.setAuth(async ({ forceRefreshToken }) => {
    if (!forceRefreshToken) return current.token;
    const http = new ConvexHttpClient(url);
    const result = await http.action(anyApi.auth.signIn, { refreshToken: current.refreshToken });
    if (!result.tokens) return null;
    current = result.tokens;
    return current.token;
  });
  return c;
}

test("password sign-up, the user id in a query, refresh over HTTP, sign-out", async () => {
  const anonymous = client();
  const result = await anonymous.action(anyApi.auth.signIn, {
    provider: "password",
    params: { flow: "signUp", email: "npm@example.com", password: "correct horse" },
  });
  assert.ok(result.tokens?.token, JSON.stringify(result));
  const c = signedInClient(result.tokens);
  const me = await until(c, (v) => v?.kind === "user");
  assert.match(me.userId, /^[0-9a-z]+$/);
  // The client refreshes once the server confirms the first token: the
  // refresh token is rotated and the identity stays.
  const http = new ConvexHttpClient(url);
  const refreshed = await http.action(anyApi.auth.signIn, { refreshToken: result.tokens.refreshToken });
  assert.ok(refreshed.tokens?.token);
  http.setAuth(refreshed.tokens.token);
  assert.equal(await http.query(anyApi.auth.isAuthenticated, {}), true);
  assert.equal((await http.query(anyApi.auth.whoami, {})).userId, me.userId);
  await c.action(anyApi.auth.signOut, {});
  const after = await new ConvexHttpClient(url).action(anyApi.auth.signIn, {
    refreshToken: refreshed.tokens.refreshToken,
  });
  assert.equal(after.tokens, null);
  await assert.rejects(
    anonymous.action(anyApi.auth.signIn, {
      provider: "password",
      params: { flow: "signIn", email: "npm@example.com", password: "wrong horse" },
    }),
    /Invalid email or password/,
  );
});

/** Starts an OAuth sign-in and follows it through the provider's login
 * until it comes back to Capstan's callback: the callback URL and the
 * browser (cookies and all) that got there. */
async function toCallback(c, login, params = {}) {
  const started = await c.action(anyApi.auth.signIn, { provider: "okta", params });
  assert.ok(started.redirect && started.verifier, JSON.stringify(started));
  const get = browser();
  let location = started.redirect;
  for (let step = 0; step < 12; step += 1) {
    if (location.startsWith(`${url}/api/auth/callback/okta`)) {
      return { callback: location, get, verifier: started.verifier };
    }
    // Relative redirects are the provider's own.
    location = await loginStep(get, new URL(location, provider.issuer).toString(), login);
  }
  throw new Error("the provider never sent the browser back");
}

/** The code in the app URL the callback redirects to, if any. */
async function finish(get, callback) {
  const response = await get(callback);
  assert.equal(response.status, 302);
  const location = new URL(response.headers.get("location"));
  assert.equal(location.origin, new URL(site).origin, `back to the app: ${location}`);
  return { code: location.searchParams.get("code"), location };
}

test("OAuth with a real OIDC provider: PKCE, state, nonce, and the code exchange", async () => {
  const c = client();
  const { callback, get, verifier } = await toCallback(c, "ada", { redirectTo: "/after" });
  const { code, location } = await finish(get, callback);
  assert.ok(code, `a code came back: ${location}`);
  assert.equal(location.pathname, "/after");
  // A replayed callback gets no second code.
  const replay = await finish(get, callback);
  assert.equal(replay.code, null);
  // Only the verifier from the start exchanges the code.
  const wrong = await c.action(anyApi.auth.signIn, { params: { code }, verifier: "not-the-verifier" });
  assert.equal(wrong.tokens, null);
  const signedIn = await c.action(anyApi.auth.signIn, { params: { code }, verifier });
  assert.ok(signedIn.tokens?.token, JSON.stringify(signedIn));
  const me = await until(signedInClient(signedIn.tokens), (v) => v?.kind === "user");
  assert.equal(me.identity.issuer, url);
  // The same person again: the same user.
  const again = await toCallback(client(), "ada");
  const second = await finish(again.get, again.callback);
  const tokens = await c.action(anyApi.auth.signIn, { params: { code: second.code }, verifier: again.verifier });
  const me2 = await until(signedInClient(tokens.tokens), (v) => v?.kind === "user");
  assert.equal(me2.userId, me.userId);
});

test("OAuth refusals: a tampered state, another browser, a foreign redirectTo", async () => {
  const c = client();
  const { callback, get } = await toCallback(c, "grace");
  const tampered = new URL(callback);
  tampered.searchParams.set("state", "x" + tampered.searchParams.get("state").slice(1));
  assert.equal((await finish(get, tampered.toString())).code, null);
  // The callback from a browser without the state cookie: refused.
  const fresh = await toCallback(c, "grace");
  assert.equal((await finish(browser(), fresh.callback)).code, null);
  await assert.rejects(
    c.action(anyApi.auth.signIn, { provider: "okta", params: { redirectTo: "https://evil.example.com/" } }),
    /redirectTo/,
  );
});
