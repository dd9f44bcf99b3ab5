// The package itself: ESM and CommonJS entry points, the same API.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

import * as esm from "../dist/index.mjs";

test("require() and import give the same API", () => {
  const cjs = createRequire(import.meta.url)(".."); // the package: main / exports
  for (const name of ["Tidings", "Feed", "Subscription", "TidingsError", "MemoryStorage", "localStorageAdapter", "asyncStorageAdapter"]) {
    assert.equal(typeof esm[name], "function", `ESM ${name}`);
    assert.equal(typeof cjs[name], "function", `CJS ${name}`);
  }
  const pkg = createRequire(import.meta.url)("../package.json");
  assert.deepEqual(Object.keys(pkg.dependencies), ["socket.io-client"]);
});

test("the token's exp is read without Node APIs", () => {
  const payload = Buffer.from(JSON.stringify({ user_id: "bøb", exp: 2000000000 })).toString("base64url");
  assert.equal(esm.expiresAt(`x.${payload}.y`), 2000000000 * 1000);
  assert.equal(esm.expiresAt("not a token"), undefined);
});
