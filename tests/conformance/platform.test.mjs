// The unmodified `convex` npm client against the billing example
// (`examples/billing`): a signed webhook posted with fetch shows up in a live
// subscription, its receipt goes out through a scheduled action, and an
// avatar uploads through an upload URL the way a browser app does it. Run by
// `runtime/server/tests/all/conformance.rs`, which starts the server (with a
// mail API stand-in) and sets CAPSTAN_URL and PAYMENT_WEBHOOK_SECRET.

import crypto from "node:crypto";
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";

const url = process.env.CAPSTAN_URL;
const secret = process.env.PAYMENT_WEBHOOK_SECRET;
assert.ok(url && secret, "CAPSTAN_URL and PAYMENT_WEBHOOK_SECRET name the server under test");
const api = anyApi;
const client = new ConvexClient(url);
after(() => client.close());

/** Resolves with the first value of a subscription that satisfies `ok`. */
function until(query, args, ok, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error("no value satisfied the test in time"));
    }, timeoutMs);
    const unsubscribe = client.onUpdate(query, args, (value) => {
      if (ok(value)) {
        clearTimeout(timer);
        unsubscribe();
        resolve(value);
      }
    });
  });
}

function stripeSignature(body, timestamp = Math.floor(Date.now() / 1000)) {
  const mac = crypto.createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  return `t=${timestamp},v1=${mac}`;
}

test("a signed webhook's payment reaches a live subscription and its receipt is sent", async () => {
  const event = JSON.stringify({
    id: `evt_${crypto.randomUUID()}`,
    type: "payment.succeeded",
    data: { email: "grace@example.com", amount: 4200, currency: "usd" },
  });
  const seen = until(api.payments.list, {}, (payments) =>
    payments.some((p) => p.email === "grace@example.com"),
  );
  const forged = await fetch(`${url}/http/webhooks/payment`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Stripe-Signature": stripeSignature("{}") },
    body: event,
  });
  assert.equal(forged.status, 401);
  const response = await fetch(`${url}/http/webhooks/payment`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Stripe-Signature": stripeSignature(event) },
    body: event,
  });
  assert.equal(response.status, 200, await response.clone().text());
  const { payment } = await response.json();
  assert.ok(payment);
  await seen;
  await until(api.payments.list, {}, (payments) =>
    payments.some((p) => p._id === payment && p.receipt === "sent"),
  );
});

test("an avatar uploads through an upload URL and downloads whole and in part", async () => {
  const email = `ada-${crypto.randomUUID()}@example.com`;
  await client.mutation(api.members.join, { name: "Ada", email });
  const uploadUrl = await client.mutation(api.members.generate_upload_url, {});
  const picture = crypto.randomBytes(50_000);
  const uploaded = await fetch(uploadUrl, {
    method: "POST",
    headers: { "Content-Type": "image/png" },
    body: picture,
  });
  assert.equal(uploaded.status, 200);
  const { storageId } = await uploaded.json();
  await client.mutation(api.members.set_avatar, { email, storageId });
  const avatarUrl = await until(api.members.avatar_url, { email }, (u) => typeof u === "string");
  const whole = await fetch(avatarUrl);
  assert.equal(whole.status, 200);
  assert.equal(whole.headers.get("content-type"), "image/png");
  assert.deepEqual(Buffer.from(await whole.arrayBuffer()), picture);
  const part = await fetch(avatarUrl, { headers: { Range: "bytes=100-199" } });
  assert.equal(part.status, 206);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), picture.subarray(100, 200));
  const redirected = await fetch(`${url}/http/avatars/${email}`);
  assert.equal(redirected.status, 200);
  assert.equal((await redirected.arrayBuffer()).byteLength, picture.length);
});
