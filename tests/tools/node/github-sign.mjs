// Prints a GitHub-style signature header value for the body on stdin:
//   node github-sign.mjs SECRET sha256   -> sha256=HEX (@octokit/webhooks-methods)
//   node github-sign.mjs SECRET sha1     -> sha1=HEX   (node:crypto; octokit signs sha256 only)
// With a third argument TIMESTAMP, signs "TIMESTAMP.BODY" instead.
import { createHmac } from "node:crypto";
import { sign } from "@octokit/webhooks-methods";

const [secret, algorithm, timestamp] = process.argv.slice(2);
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const body = Buffer.concat(chunks).toString("utf8");
const payload = timestamp ? `${timestamp}.${body}` : body;
if (algorithm === "sha256") {
  process.stdout.write(await sign(secret, payload));
} else if (algorithm === "sha1") {
  process.stdout.write(`sha1=${createHmac("sha1", secret).update(payload).digest("hex")}`);
} else {
  console.error(`unknown algorithm ${algorithm}`);
  process.exit(2);
}
