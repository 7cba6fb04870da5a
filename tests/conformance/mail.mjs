// A real SMTP server (the `smtp-server` package) on loopback that keeps
// every message it receives, for the sign-in tests to read codes and links
// from, as a person reads their inbox.

import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";

/** Starts the server on `port`. Returns `{messages, next(to), stop}`. */
export async function startMailServer(port) {
  const messages = [];
  const waiters = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((mail) => {
          const message = {
            from: mail.from?.text ?? "",
            to: mail.to?.text ?? "",
            subject: mail.subject ?? "",
            text: mail.text ?? "",
            envelope: session.envelope,
          };
          messages.push(message);
          for (const waiter of waiters.splice(0)) waiter();
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    messages,
    /** The next message to `to` after `since` messages, waiting for it. */
    async next(to, since = 0, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.slice(since).find((m) => m.to.includes(to));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no message to ${to}`);
        await new Promise((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The code in a message: the `code` parameter of its link, or the first
 * long run of digits. */
export function codeIn(message) {
  const link = message.text.match(/[?&]code=([A-Za-z0-9]+)/);
  if (link) return link[1];
  const digits = message.text.match(/\b\d{6,12}\b/);
  if (!digits) throw new Error(`no code in ${JSON.stringify(message.text)}`);
  return digits[0];
}

/** The sign-in link in a message: the URL with a code. */
export function linkIn(message) {
  const url = message.text.match(/https?:\/\/\S+[?&]code=[A-Za-z0-9]+/);
  if (!url) throw new Error(`no link in ${JSON.stringify(message.text)}`);
  return url[0];
}
