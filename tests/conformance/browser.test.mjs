// Built-in auth in a real browser: headless Chromium (Debian's package,
// driven by `playwright-core`) loads a page bundled here from the npm
// packages `convex`, `@convex-dev/auth`, `react` and `react-dom`, which
// signs in with `ConvexAuthProvider` and `useAuthActions` exactly as an app
// would. Emails go through a real SMTP server (`smtp-server`), OAuth through
// a real OpenID Connect provider (`oidc-provider`). Run by
// `runtime/server/tests/all/conformance.rs`, which deploys the test guest
// with built-in auth and sets CAPSTAN_URL, SITE_PORT, SMTP_PORT, OIDC_PORT.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";
import { codeIn, linkIn, startMailServer } from "./mail.mjs";
import { signingKey, startProvider } from "./oidc.mjs";

const url = process.env.CAPSTAN_URL;
const sitePort = Number(process.env.SITE_PORT);
const site = `http://127.0.0.1:${sitePort}`;
assert.ok(url && sitePort, "CAPSTAN_URL and SITE_PORT are set");

let mail, provider, pages, browser;

before(async () => {
  mail = await startMailServer(Number(process.env.SMTP_PORT));
  provider = await startProvider(Number(process.env.OIDC_PORT), [signingKey("k1")], 3600, [
    {
      client_id: "capstan-oauth",
      client_secret: "oauth-test-secret",
      redirect_uris: [`${url}/api/auth/callback/okta`],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ]);
  const bundle = await esbuild.build({
    entryPoints: ["web/app.jsx"],
    bundle: true,
    write: false,
    format: "esm",
    minify: true,
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  });
  const script = bundle.outputFiles[0].contents;
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>capstan auth test</title>
<script>window.CAPSTAN_URL = ${JSON.stringify(url)};</script></head>
<body><div id="root"></div><script type="module" src="/app.js"></script></body></html>`;
  pages = http.createServer((request, response) => {
    if (request.url === "/app.js") {
      response.writeHead(200, { "content-type": "text/javascript" });
      response.end(script);
    } else {
      response.writeHead(200, { "content-type": "text/html" });
      response.end(html);
    }
  });
  await new Promise((resolve) => pages.listen(sitePort, "127.0.0.1", resolve));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (pages ? pages.close(resolve) : resolve()));
  await mail?.stop();
  await provider?.stop();
});

/** What the page shows: `{isLoading, isAuthenticated, me}`. */
async function state(page) {
  return JSON.parse(await page.locator("#state").textContent());
}

/** Waits until the page's state satisfies `ok` (a string of JS over `s`). */
async function until(page, ok, timeout = 20_000) {
  await page.waitForFunction(
    (ok) => {
      const element = document.getElementById("state");
      if (!element) return false;
      const s = JSON.parse(element.textContent);
      return new Function("s", `return ${ok}`)(s);
    },
    ok,
    { timeout, polling: 100 },
  );
  return state(page);
}

async function freshPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(site);
  await until(page, "!s.isLoading");
  return page;
}

test("password: sign up, see the user id, reload, sign out, sign in again", async () => {
  const page = await freshPage();
  await page.evaluate(() =>
    window.auth.signIn("password", { flow: "signUp", email: "web@example.com", password: "correct horse" }),
  );
  const signedIn = await until(page, 's.isAuthenticated && s.me && s.me.kind === "user"');
  const userId = signedIn.me.userId;
  assert.match(userId, /^[0-9a-z]+$/);
  // A reload keeps the session: the client refreshes from its storage.
  await page.reload();
  const reloaded = await until(page, 's.isAuthenticated && s.me && s.me.kind === "user"');
  assert.equal(reloaded.me.userId, userId);
  await page.evaluate(() => window.auth.signOut());
  await until(page, '!s.isAuthenticated && s.me && s.me.kind === "anonymous"');
  await page.evaluate(() =>
    window.auth.signIn("password", { flow: "signIn", email: "web@example.com", password: "correct horse" }),
  );
  const again = await until(page, 's.isAuthenticated && s.me && s.me.kind === "user"');
  assert.equal(again.me.userId, userId);
  await page.context().close();
});

test("a magic link from a real SMTP server signs the browser in", async () => {
  const page = await freshPage();
  const since = mail.messages.length;
  await page.evaluate(() => window.auth.signIn("magic", { email: "link@example.com", redirectTo: "/welcome" }));
  const message = await mail.next("link@example.com", since);
  assert.match(message.from, /auth@capstan\.test/);
  const link = linkIn(message);
  assert.ok(link.startsWith(`${site}/welcome?code=`), link);
  await page.goto(link);
  const signedIn = await until(page, 's.isAuthenticated && s.me && s.me.kind === "user"');
  assert.ok(signedIn.me.userId);
  // The code left the address bar.
  assert.ok(!page.url().includes("code="), page.url());
  await page.context().close();
});

test("an emailed code, typed in", async () => {
  const page = await freshPage();
  const since = mail.messages.length;
  await page.evaluate(() => window.auth.signIn("email-code", { email: "code@example.com" }));
  const code = codeIn(await mail.next("code@example.com", since));
  assert.match(code, /^\d{8}$/);
  await page.evaluate(
    (code) => window.auth.signIn("email-code", { email: "code@example.com", code }),
    code,
  );
  await until(page, 's.isAuthenticated && s.me && s.me.kind === "user"');
  await page.context().close();
});

test("a password reset by email", async () => {
  const page = await freshPage();
  await page.evaluate(() =>
    window.auth.signIn("password", { flow: "signUp", email: "reset@example.com", password: "first password" }),
  );
  await until(page, "s.isAuthenticated");
  await page.evaluate(() => window.auth.signOut());
  await until(page, "!s.isAuthenticated");
  const since = mail.messages.length;
  await page.evaluate(() => window.auth.signIn("password", { flow: "reset", email: "reset@example.com" }));
  const code = codeIn(await mail.next("reset@example.com", since));
  await page.evaluate(
    (code) =>
      window.auth.signIn("password", {
        flow: "reset-verification",
        email: "reset@example.com",
        code,
        newPassword: "second password",
      }),
    code,
  );
  await until(page, 's.isAuthenticated && s.me && s.me.kind === "user"');
  await page.context().close();
});

test("OAuth: the browser's full redirect dance with a real OIDC provider", async () => {
  const page = await freshPage();
  // signIn navigates the page away: not awaited.
  await page.evaluate(() => {
    window.auth.signIn("okta", { redirectTo: "/after" });
  });
  await page.waitForURL(/\/interaction\//, { timeout: 20_000 });
  await page.fill('input[name="login"]', "ada");
  await page.fill('input[name="password"]', "any");
  await page.click('button[type="submit"]');
  await page.waitForURL(/\/interaction\/|\/after/, { timeout: 20_000 });
  if (page.url().includes("/interaction/")) {
    await page.click('button[type="submit"]');
  }
  await page.waitForURL((u) => u.toString().startsWith(`${site}/after`), { timeout: 20_000 });
  const signedIn = await until(page, 's.isAuthenticated && s.me && s.me.kind === "user"');
  assert.equal(signedIn.me.identity.issuer, url);
  await page.context().close();
});
