// Headless Chromium (Debian's, never a downloaded one) through playwright-core.
import { existsSync } from "node:fs";
import { inflateSync } from "node:zlib";

import { chromium } from "playwright-core";

export const CHROMIUM = process.env.TIDINGS_CHROMIUM || "/usr/bin/chromium";

export function launch() {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (make install-test installs Debian's chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
}

/** Whether a PNG shows something: its pixels (inflated, unfiltered bytes) are far from one
 * colour. Reads the PNG itself (IHDR, IDAT), so the test looks at the image, not the DOM. */
export function pngVariety(png) {
  assertPng(png);
  let offset = 8;
  let width = 0;
  const idat = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString("ascii", offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") width = data.readUInt32BE(0);
    if (type === "IDAT") idat.push(data);
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = 1 + width * 4; // RGBA rows, one filter byte each (Chromium writes RGBA)
  const colours = new Set();
  let rows = 0;
  for (let row = 0; row + stride <= raw.length; row += stride * 7) {
    // only unfiltered rows hold plain pixels; Chromium mostly writes filters 0 and 1 (sub)
    rows += 1;
    const filter = raw[row];
    let previous = [0, 0, 0, 0];
    for (let x = 0; x < width; x += 1) {
      const at = row + 1 + x * 4;
      let px = [raw[at], raw[at + 1], raw[at + 2], raw[at + 3]];
      if (filter === 1) px = px.map((v, i) => (v + previous[i]) & 0xff);
      previous = px;
      if (filter === 0 || filter === 1) colours.add(px.slice(0, 3).join(","));
    }
  }
  return { width, colours: colours.size, rows };
}

function assertPng(png) {
  if (png.length < 100 || png.readUInt32BE(0) !== 0x89504e47) throw new Error("not a PNG");
}
