// Weight and time to interactive of the visitor page, for bench/page_load.py (not a test: it
// prints numbers). Each run is a fresh browser context (empty cache), on a phone viewport;
// "interactive" is the page's own `beacon-ready` mark: the chat is open and a person can type.
// The same-run baseline is loading /healthz (a tiny JSON answer from the same server).
import { done, launch } from "./lib.mjs";

const RUNS = Number(process.env.RUNS || 5);
// A poor mobile connection: 400 ms round trip, 400 kbit/s down, 200 kbit/s up.
const SLOW = { offline: false, latency: 400, downloadThroughput: 50000, uploadThroughput: 25000 };
const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

async function once(browser, path, conditions) {
  const context = await browser.newContext({ baseURL: process.env.BEACON_BASE_URL, ...phone });
  const page = await context.newPage();
  if (conditions) {
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", conditions);
  }
  await page.goto(path, { waitUntil: "load", timeout: 120000 });
  let ready = null;
  if (path === "/chat") {
    await page.waitForFunction(() => performance.getEntriesByName("beacon-ready").length > 0, null, { timeout: 120000 });
    ready = await page.evaluate(() => performance.getEntriesByName("beacon-ready")[0].startTime);
  }
  const figures = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const all = [nav, ...performance.getEntriesByType("resource")];
    return {
      load_ms: nav.loadEventEnd,
      dom_content_loaded_ms: nav.domContentLoadedEventEnd,
      transfer_bytes: all.reduce((s, e) => s + (e.transferSize || 0), 0),
      body_bytes: all.reduce((s, e) => s + (e.decodedBodySize || 0), 0),
      requests: all.length,
    };
  });
  await context.close();
  return { ...figures, interactive_ms: ready };
}

const median = (xs) => { const s = xs.slice().sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const browser = await launch();
const out = { runs: RUNS };
try {
  for (const [name, conditions] of [["fast", null], ["slow", SLOW]]) {
    const chat = [];
    const base = [];
    for (let i = 0; i < RUNS; i += 1) {
      base.push(await once(browser, "/healthz", conditions));
      chat.push(await once(browser, "/chat", conditions));
    }
    out[name] = {
      chat_interactive_ms: median(chat.map((r) => r.interactive_ms)),
      chat_load_ms: median(chat.map((r) => r.load_ms)),
      baseline_load_ms: median(base.map((r) => r.load_ms)),
      transfer_bytes: chat[0].transfer_bytes,
      body_bytes: chat[0].body_bytes,
      requests: chat[0].requests,
    };
  }
  out.ok = true;
} catch (err) {
  out.ok = false;
  out.error = String(err && err.stack ? err.stack : err);
} finally {
  done(out);
  await browser.close();
}
process.exit(out.ok ? 0 : 1);
