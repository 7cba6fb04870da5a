// A real OpenID Connect provider (the `oidc-provider` package) on loopback,
// and a headless login that gets ID tokens from it through the
// authorization code flow with PKCE, the way a browser app would.

import crypto from "node:crypto";
import http from "node:http";
import Provider from "oidc-provider";

export const CLIENT_ID = "capstan-test";
const CLIENT_SECRET = "conformance-secret";
const REDIRECT = "http://127.0.0.1/callback";

const accounts = {
  ada: { name: "Ada Lovelace", email: "ada@example.com", email_verified: true },
  grace: { name: "Grace Hopper", email: "grace@example.com", email_verified: true },
};

/** An RS256 signing key as a private JWK with `kid`. */
export function signingKey(kid) {
  const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid, use: "sig", alg: "RS256" };
}

/**
 * Starts a provider at http://127.0.0.1:`port` signing with `keys` (the
 * first signs). ID tokens live `idTokenTtl` seconds. Returns `{issuer, stop}`.
 */
export async function startProvider(port, keys, idTokenTtl = 3600, extraClients = []) {
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [REDIRECT],
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
      ...extraClients,
    ],
    jwks: { keys },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    conformIdTokenClaims: false,
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, ...(accounts[id] ?? {}) }),
    }),
    ttl: { IdToken: idTokenTtl, AccessToken: 600, Interaction: 600, Session: 600, Grant: 600 },
    cookies: { keys: ["conformance-cookie-key"] },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
  });
  // Quiet: the provider warns about development settings on every start.
  provider.on("server_error", (_ctx, error) => console.error("provider error", error));
  const server = http.createServer(provider.callback());
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    issuer,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(resolve);
      }),
  };
}

/**
 * fetch, tried again once when a pooled connection turns out to be dead
 * (after a provider restart on the same port).
 */
async function fetchAgain(url, options) {
  try {
    return await fetch(url, options);
  } catch {
    return fetch(url, options);
  }
}

/** A fetch that keeps cookies and never follows redirects. */
export function browser() {
  const jar = new Map();
  return async (url, options = {}) => {
    const headers = { ...(options.headers ?? {}) };
    if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    const response = await fetchAgain(url, { ...options, headers, redirect: "manual" });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(";");
      const index = pair.indexOf("=");
      jar.set(pair.slice(0, index).trim(), pair.slice(index + 1).trim());
    }
    return response;
  };
}

const base64url = (buffer) => buffer.toString("base64url");

/** Signs `login` in at the provider and returns a fresh ID token. */
export async function idToken(issuer, login) {
  const get = browser();
  const verifier = base64url(crypto.randomBytes(32));
  const challenge = base64url(crypto.createHash("sha256").update(verifier).digest());
  const start = new URL(`${issuer}/auth`);
  for (const [k, v] of Object.entries({
    client_id: CLIENT_ID,
    response_type: "code",
    scope: "openid email profile",
    redirect_uri: REDIRECT,
    code_challenge: challenge,
    code_challenge_method: "S256",
    nonce: base64url(crypto.randomBytes(8)),
    prompt: "login consent",
  })) {
    start.searchParams.set(k, v);
  }
  let location = start.toString();
  for (let step = 0; step < 12; step += 1) {
    if (location.startsWith(REDIRECT)) {
      const code = new URL(location).searchParams.get("code");
      if (!code) throw new Error(`the provider refused the login: ${location}`);
      const token = await fetchAgain(`${issuer}/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString("base64")}`,
        },
        body: new URLSearchParams({
          grant_type: "authorization_code",
          code,
          redirect_uri: REDIRECT,
          code_verifier: verifier,
        }),
      });
      const body = await token.json();
      if (!body.id_token) throw new Error(`no ID token: ${JSON.stringify(body)}`);
      return body.id_token;
    }
    location = await loginStep(get, new URL(location, issuer).toString(), login);
  }
  throw new Error("the login did not finish");
}

/**
 * One step of a login at the provider, as a person at a browser takes it:
 * fill in the login form, agree to the consent form, or follow a redirect.
 * Returns the next location.
 */
export async function loginStep(get, url, login) {
  let response;
  if (url.includes("/interaction/")) {
    const page = await get(url);
    const html = await page.text();
    const prompt = html.includes('name="login"') ? "login" : "consent";
    const form = prompt === "login" ? { prompt, login, password: "any" } : { prompt };
    response = await get(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form),
    });
  } else {
    response = await get(url);
  }
  const location = response.headers.get("location");
  if (!location) {
    throw new Error(`the login stopped at ${url}: ${response.status} ${await response.text()}`);
  }
  return location;
}
