// One page of headless Chromium (Debian's, never a downloaded one, launched as clients/js's
// browser tests do), driven line by line by tests/integration/test_react_example.py.
//
//   node e2e/page.mjs '{"width": 900, "height": 1000}'
//
// stdin, one JSON command per line, each answered by one line {"id", "ok", "result"|"error"}:
//   {"id", "do": "goto", "url"}                     {"id", "do": "click", "selector"}
//   {"id", "do": "fill", "selector", "value"}       {"id", "do": "upload", "selector", "path"}
//   {"id", "do": "press", "selector", "key"}        {"id", "do": "text", "selector"}
//   {"id", "do": "texts", "selector"}               every match's text, now (no wait)
//   {"id", "do": "wait", "selector", "text"?}       waits for the selector (holding the text)
//   {"id", "do": "attribute", "selector", "name"}   {"id", "do": "screenshot", "path", "selector"?}
// and, unasked, {"type": "console"|"pageerror", "text"} for what the page logs. Every wait is
// bounded by "timeout" (ms, default 10000). Exits when stdin closes.
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";

import { chromium } from "playwright-core";

const CHROMIUM = process.env.TIDINGS_CHROMIUM || "/usr/bin/chromium";
const options = JSON.parse(process.argv[2] || "{}");
const out = (record) => process.stdout.write(JSON.stringify(record) + "\n");

if (!existsSync(CHROMIUM)) {
  out({ type: "fatal", text: `no Chromium at ${CHROMIUM} (make system-deps installs Debian's chromium)` });
  process.exit(1);
}
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: options.width ?? 900, height: options.height ?? 1000 } });
page.on("console", (message) => {
  out({ type: "console", text: `${message.type()}: ${message.text()}` });
});
page.on("pageerror", (error) => out({ type: "pageerror", text: String(error) }));

const steps = {
  goto: ({ url }) => page.goto(url).then(() => null),
  click: ({ selector, timeout }) => page.click(selector, { timeout }),
  fill: ({ selector, value, timeout }) => page.fill(selector, value, { timeout }),
  press: ({ selector, key, timeout }) => page.press(selector, key, { timeout }),
  upload: ({ selector, path, timeout }) => page.setInputFiles(selector, path, { timeout }),
  text: ({ selector, timeout }) => page.textContent(selector, { timeout }),
  texts: ({ selector }) => page.$$eval(selector, (found) => found.map((e) => e.textContent)),
  attribute: ({ selector, name, timeout }) => page.getAttribute(selector, name, { timeout }),
  screenshot: ({ path, selector }) => (selector ? page.locator(selector) : page).screenshot({ path }).then(() => path),
  wait: ({ selector, text, timeout }) =>
    page.waitForFunction(
      ([s, t]) => [...document.querySelectorAll(s)].some((e) => t == null || e.textContent.includes(t)),
      [selector, text ?? null],
      { timeout },
    ).then(() => null),
};

const pending = [];
createInterface({ input: process.stdin })
  .on("line", (line) => {
    const command = JSON.parse(line);
    const step = steps[command.do];
    const args = { timeout: 10000, ...command };
    const done = (step ? step(args) : Promise.reject(new Error(`unknown step ${command.do}`))).then(
      (result) => out({ id: command.id, ok: true, result: result ?? null }),
      (error) => out({ id: command.id, ok: false, error: String(error?.message || error) }),
    );
    pending.push(done);
  })
  .on("close", async () => {
    await Promise.allSettled(pending);
    await browser.close();
  });
