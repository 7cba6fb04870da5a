// The unmodified `convex` npm client with ID tokens from a real OpenID
// Connect provider (`oidc-provider`, started here on OIDC_PORT). Run by
// `runtime/server/tests/all/conformance.rs`, which starts a Capstan server
// whose app trusts that provider and sets CAPSTAN_URL.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { CLIENT_ID, idToken, signingKey, startProvider } from "./oidc.mjs";

const url = process.env.CAPSTAN_URL;
const port = Number(process.env.OIDC_PORT);
assert.ok(url && port, "CAPSTAN_URL and OIDC_PORT name the server and the provider's port");
const whoami = anyApi.auth.whoami;
const clients = [];
let provider = await startProvider(port, [signingKey("k1")], 15);

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
      reject(new Error(`no identity satisfied the test in time; the last was ${JSON.stringify(last)}`));
    }, timeoutMs);
    const unsubscribe = c.onUpdate(whoami, {}, (value) => {
      last = value;
      if (ok(value)) {
        clearTimeout(timer);
        unsubscribe();
        resolve(value);
      }
    });
  });
}

/** Resolves when onChange has been called with `expected`. */
function authChanges() {
  const seen = [];
  const waiters = [];
  return {
    onChange: (value) => {
      seen.push(value);
      for (const waiter of waiters.splice(0)) waiter();
    },
    seen,
    async became(expected, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (seen.at(-1) !== expected) {
        if (Date.now() > deadline) throw new Error(`auth never became ${expected}: ${seen}`);
        await new Promise((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
  };
}

test("ConvexHttpClient calls as the user of a provider's ID token", async () => {
  const http = new ConvexHttpClient(url);
  assert.deepEqual(await http.query(whoami, {}), { kind: "anonymous" });
  http.setAuth(await idToken(provider.issuer, "ada"));
  const me = await http.query(whoami, {});
  assert.equal(me.kind, "user");
  assert.equal(me.identity.subject, "ada");
  assert.equal(me.identity.issuer, provider.issuer);
  assert.equal(me.identity.tokenIdentifier, `${provider.issuer}|ada`);
  assert.equal(me.identity.email, "ada@example.com");
  assert.equal(me.identity.emailVerified, true);
  assert.equal(me.identity.name, "Ada Lovelace");
  const mutation = await http.mutation(anyApi.auth.whoami_mutation, {});
  assert.deepEqual(mutation, me);
  const action = await http.action(anyApi.auth.whoami_action, {});
  assert.deepEqual(action.nested, me);
});

test("setAuth over the socket: authenticated, refreshed as another user, then signed out", async () => {
  const c = client();
  const changes = authChanges();
  // Each fetch signs the next person in, so a refresh shows up as a new identity.
  const logins = ["ada", "ada", "grace"];
  let fetched = 0;
  c.setAuth(async () => idToken(provider.issuer, logins[Math.min(fetched++, logins.length - 1)]), changes.onChange);
  await changes.became(true);
  assert.equal((await until(c, (v) => v.kind === "user")).identity.aud, undefined);
  await until(c, (v) => v.identity?.subject === "ada");
  // ID tokens live 15 s; the client refreshes 10 s before expiry, and the
  // query runs again under the new identity without being resubscribed.
  const refreshed = await until(c, (v) => v.identity?.subject === "grace", 30_000);
  assert.equal(refreshed.identity.name, "Grace Hopper");
  assert.ok(fetched >= 3, `fetched ${fetched} tokens`);
  c.client.clearAuth();
  await until(c, (v) => v.kind === "anonymous");
});

test("a rejected token makes the client fall back to anonymous", async () => {
  const c = client();
  const changes = authChanges();
  const forged = (await idToken(provider.issuer, "ada")).replace(/\.[^.]+$/, ".AAAA");
  c.setAuth(async () => forged, changes.onChange);
  await changes.became(false, 30_000);
  assert.deepEqual(await until(c, (v) => v.kind === "anonymous"), { kind: "anonymous" });
});

test("the provider rotates its key: the new kid is picked up without a restart", async () => {
  await provider.stop();
  provider = await startProvider(port, [signingKey("k2")], 3600);
  const token = await idToken(provider.issuer, "grace");
  const header = JSON.parse(Buffer.from(token.split(".")[0], "base64url"));
  assert.equal(header.kid, "k2");
  const http = new ConvexHttpClient(url);
  http.setAuth(token);
  const me = await http.query(whoami, {});
  assert.equal(me.identity.subject, "grace");
  assert.equal(CLIENT_ID, "capstan-test");
});
