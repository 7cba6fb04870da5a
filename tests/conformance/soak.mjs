// One side of the soak (sdk/client/tests/soak.rs): the unmodified `convex`
// npm client increments a counter for SOAK_SECONDS, holding a subscription,
// and reconnects (a new client) every 15 s. Prints what it did as JSON:
// acknowledged increments, errors, reconnects.

import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";

const url = process.env.CAPSTAN_URL;
const seconds = Number(process.env.SOAK_SECONDS);
const name = process.env.SOAK_COUNTER;
if (!url || !(seconds > 0) || !name) {
  console.error("set CAPSTAN_URL, SOAK_SECONDS and SOAK_COUNTER");
  process.exit(2);
}

let acknowledged = 0;
let updates = 0;
let reconnects = 0;
const errors = [];
const deadline = Date.now() + seconds * 1000;
while (Date.now() < deadline) {
  const client = new ConvexClient(url);
  const unsubscribe = client.onUpdate(anyApi.api.count_all, {}, () => updates++);
  const until = Math.min(deadline, Date.now() + 15_000);
  while (Date.now() < until) {
    try {
      await client.mutation(anyApi.api.increment, { name });
      acknowledged++;
    } catch (error) {
      errors.push(String(error));
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  unsubscribe();
  await client.close();
  reconnects++;
}
console.log(
  JSON.stringify({ acknowledged, updates, reconnects, errors: errors.length, firstErrors: errors.slice(0, 5) }),
);
