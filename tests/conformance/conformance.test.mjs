// The unmodified `convex` npm client against a Capstan server serving the
// test guest (`tests/guest`). Run by `runtime/server/tests/all/conformance.rs`,
// which starts the server and sets CAPSTAN_URL.

import net from "node:net";
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { ConvexError } from "convex/values";

const url = process.env.CAPSTAN_URL;
assert.ok(url, "CAPSTAN_URL names the server under test");
const api = anyApi.api;
const run = `${process.pid}-${Date.now()}`;
const clients = [];

function client(options = {}) {
  const c = new ConvexClient(url, options);
  clients.push(c);
  return c;
}

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

/** Resolves with the first value of a subscription that satisfies `ok`. */
function until(c, query, args, ok, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no value of ${JSON.stringify(args)} satisfied the test in time`));
    }, timeoutMs);
    const unsubscribe = c.onUpdate(
      query,
      args,
      (value) => {
        if (ok(value)) {
          clearTimeout(timer);
          unsubscribe();
          resolve(value);
        }
      },
      (error) => {
        clearTimeout(timer);
        unsubscribe();
        reject(error);
      },
    );
  });
}

const bodies = (list) => list.map((m) => m.body);

test("a subscription receives another client's mutation", async () => {
  const channel = `shared-${run}`;
  const reader = client();
  const writer = client();
  await until(reader, api.list, { channel }, (list) => list.length === 0);
  const seen = until(reader, api.list, { channel }, (list) => list.length === 1);
  await writer.mutation(api.send, { channel, body: "hello" });
  assert.deepEqual(bodies(await seen), ["hello"]);
});

test("await mutation() resolves after its writes are visible (read-your-writes)", async () => {
  const channel = `ryw-${run}`;
  const c = client();
  let latest;
  c.onUpdate(api.list, { channel }, (value) => {
    latest = value;
  });
  await until(c, api.list, { channel }, (list) => list.length === 0);
  for (let i = 0; i < 5; i++) {
    await c.mutation(api.send, { channel, body: `m${i}` });
    assert.equal(latest.length, i + 1, "the subscription already holds the mutation's write");
  }
});

test("ConvexError data arrives as .data", async () => {
  const c = client();
  await assert.rejects(c.query(api.fail, {}), (error) => {
    assert.ok(error instanceof ConvexError, `${error}`);
    assert.equal(error.data.code, "TOO_MANY");
    assert.equal(error.data.limit, 3, "plain JSON numbers in ConvexError data are numbers");
    return true;
  });
});

test("a failing query reaches the error callback", async () => {
  const c = client();
  const error = await new Promise((resolve) => {
    c.onUpdate(api.fail_plain, {}, () => {}, resolve);
  });
  assert.match(error.message, /plain failure 7/);
});

test("actions run and can call mutations", async () => {
  const channel = `action-${run}`;
  const c = client();
  const result = await c.action(api.send_and_list, { channel, body: "from an action" });
  assert.equal(result.count, 1, "a Rust integer arrives as a number");
  assert.deepEqual(bodies(await c.query(api.list, { channel })), ["from an action"]);
});

test("numbers: Rust integers are numbers, Int64 a bigint, Bytes an ArrayBuffer", async () => {
  const c = client();
  const numbers = await c.query(anyApi.values.numbers, {});
  assert.equal(numbers.small, 7);
  assert.equal(numbers.negative, -(2 ** 53));
  assert.equal(numbers.ratio, 0.5);
  assert.equal(numbers.big, 2n ** 60n);
  assert.ok(numbers.bytes instanceof ArrayBuffer, `${numbers.bytes}`);
  assert.deepEqual([...new Uint8Array(numbers.bytes)], [0, 1, 255]);
  assert.deepEqual(numbers.list, [0, 1, 255]);
  assert.ok(!("nothing" in numbers), "a None field is left out, as undefined is");
  assert.deepEqual(numbers.holes, [1, null]);
});

test("every Convex type survives a round trip through a Rust function", async () => {
  const c = client();
  const bytes = new Uint8Array([0, 1, 2, 254, 255]).buffer;
  const args = {
    int: -(2n ** 63n),
    max: 2n ** 63n - 1n,
    float: 1.5,
    whole: 3,
    nan: NaN,
    negZero: -0,
    inf: Infinity,
    negInf: -Infinity,
    bytes,
    text: "é\u{1F600}",
    flag: true,
    nothing: null,
    list: [1n, [2, { deep: 3n }]],
    nested: { a: { b: { c: [] } } },
  };
  for (const [name, call] of [
    ["echo", (a) => c.query(api.echo, a)],
    ["store and load", async (a) => {
      const id = await c.mutation(anyApi.values.store, { value: a });
      return (await c.query(anyApi.values.load, { id })).value;
    }],
  ]) {
    const back = await call(args);
    assert.equal(back.int, -(2n ** 63n), name);
    assert.equal(back.max, 2n ** 63n - 1n, name);
    assert.equal(back.float, 1.5, name);
    assert.equal(back.whole, 3, name);
    assert.ok(Number.isNaN(back.nan), name);
    assert.ok(Object.is(back.negZero, -0), name);
    assert.equal(back.inf, Infinity, name);
    assert.equal(back.negInf, -Infinity, name);
    assert.deepEqual([...new Uint8Array(back.bytes)], [0, 1, 2, 254, 255], name);
    assert.equal(back.text, "é\u{1F600}", name);
    assert.equal(back.flag, true, name);
    assert.equal(back.nothing, null, name);
    assert.deepEqual(back.list, [1n, [2, { deep: 3n }]], name);
    assert.deepEqual(back.nested, { a: { b: { c: [] } } }, name);
  }
});

test("pagination options as usePaginatedQuery sends them, endCursor included", async () => {
  const channel = `pages-${run}`;
  const c = client();
  for (const body of ["a", "b", "c"]) await c.mutation(api.send, { channel, body });
  const opts = { numItems: 2, cursor: null, id: 7, maximumRowsRead: 1000 };
  const first = await c.query(api.page, { channel, opts });
  assert.deepEqual(bodies(first.page), ["c", "b"]);
  assert.equal(first.isDone, false);
  // A new message lands in the first page; read again to its end cursor,
  // the page holds it and ends where it ended.
  await c.mutation(api.send, { channel, body: "d" });
  const again = await c.query(api.page, {
    channel,
    opts: { ...opts, endCursor: first.continueCursor },
  });
  assert.deepEqual(bodies(again.page), ["d", "c", "b"]);
  assert.equal(again.continueCursor, first.continueCursor);
  const rest = await c.query(api.page, { channel, opts: { ...opts, cursor: first.continueCursor } });
  assert.deepEqual(bodies(rest.page), ["a"]);
  assert.equal(rest.isDone, true);
});

test("arguments a function does not name are refused", async () => {
  const c = client();
  await assert.rejects(
    c.query(api.list, { channel: "x", chanel: "typo" }),
    (error) => /unknown field `chanel`/.test(error.message),
  );
  await assert.rejects(
    c.mutation(api.increment, { name: 5 }),
    (error) => /Invalid arguments for `api:increment`/.test(error.message),
  );
});

test("ConvexHttpClient: query, mutation, action, errors", async () => {
  const channel = `http-${run}`;
  const http = new ConvexHttpClient(url);
  await http.mutation(api.send, { channel, body: "over http" });
  assert.deepEqual(bodies(await http.query(api.list, { channel })), ["over http"]);
  const sent = await http.action(api.send_and_list, { channel, body: "again" });
  assert.equal(sent.count, 2);
  await assert.rejects(
    http.query(api.fail, {}),
    (error) => error instanceof ConvexError && error.data.code === "TOO_MANY",
  );
});

test("20 clients x 5 subscriptions stay consistent under a stream of mutations", async () => {
  const channels = [0, 1, 2, 3, 4].map((i) => `stream-${run}-${i}`);
  const readers = Array.from({ length: 20 }, () => client());
  const latest = readers.map(() => new Map());
  readers.forEach((reader, r) => {
    for (const channel of channels) {
      reader.onUpdate(api.list, { channel }, (value) => latest[r].set(channel, bodies(value)));
    }
  });
  const writers = [client(), client(), client()];
  await Promise.all(
    writers.map(async (writer, w) => {
      for (let i = 0; i < 20; i++) {
        await writer.mutation(api.send, { channel: channels[(w + i) % 5], body: `w${w}-${i}` });
      }
    }),
  );
  const http = new ConvexHttpClient(url);
  const truth = new Map();
  for (const channel of channels) {
    truth.set(channel, bodies(await http.query(api.list, { channel })));
  }
  assert.equal([...truth.values()].flat().length, 60);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const behind = latest.filter((values) =>
      channels.some((channel) => JSON.stringify(values.get(channel)) !== JSON.stringify(truth.get(channel))),
    ).length;
    if (behind === 0) break;
    assert.ok(Date.now() < deadline, `${behind} of 20 clients never caught up with the database`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

/**
 * A TCP proxy in front of the server that, when armed, cuts the connection
 * instead of delivering the next MutationResponse (server frames are not
 * masked, so the JSON is visible in the stream).
 */
async function cuttingProxy() {
  const target = new URL(url);
  const proxy = { armed: false, cuts: 0 };
  const server = net.createServer((downstream) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    downstream.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (proxy.armed && chunk.includes("MutationResponse")) {
        proxy.armed = false;
        proxy.cuts += 1;
        downstream.destroy();
        upstream.destroy();
        return;
      }
      downstream.write(chunk);
    });
    downstream.on("error", () => upstream.destroy());
    upstream.on("error", () => downstream.destroy());
    downstream.on("close", () => upstream.destroy());
    upstream.on("close", () => downstream.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  proxy.close = () => new Promise((resolve) => server.close(resolve));
  return proxy;
}

test("a mutation in flight when the socket drops is applied exactly once", async () => {
  const channel = `dropped-${run}`;
  const proxy = await cuttingProxy();
  const viaProxy = new ConvexClient(proxy.url);
  try {
    await until(viaProxy, api.list, { channel }, (list) => list.length === 0);
    proxy.armed = true;
    // The server commits and answers; the answer is lost with the socket; the
    // client reconnects and sends the mutation again with the same requestId.
    const id = await viaProxy.mutation(api.send, { channel, body: "once" });
    assert.equal(proxy.cuts, 1, "the connection was cut with the mutation in flight");
    const http = new ConvexHttpClient(url);
    const stored = await http.query(api.list, { channel });
    assert.deepEqual(bodies(stored), ["once"]);
    assert.equal(stored[0]._id, id, "the resent mutation returned the first run's result");
  } finally {
    await viaProxy.close();
    await proxy.close();
  }
});
