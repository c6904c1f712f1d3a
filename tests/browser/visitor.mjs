// The visitor page on its own, on a phone: weight, safety contacts, keyboard use, reflow at
// 320 CSS px (what 200 % zoom gives on a 640 px window), erasure; and the dashboard refusing
// a bad token. Run by tests/browser/test_pages.py; one JSON result line.
import { BASE, ask, axe, checker, newPage, scenario, tabTo, until } from "./lib.mjs";

const result = { axe: [], checks: [] };
const check = checker(result);

await scenario(result, async (browser) => {
  const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
  const page = await newPage(browser, phone);
  const bytes = {};
  page.on("response", async (response) => {
    const url = new URL(response.url());
    if (url.origin !== new URL(BASE).origin) return;
    try {
      const body = await response.body();
      bytes[url.pathname] = body.length;
    } catch { /* a response without a body (e.g. 304) */ }
  });
  page.on("websocket", (ws) => ws.on("framereceived", (f) => {
    try {
      const frame = JSON.parse(f.payload);
      if (frame.type === "session") result.session_id = frame.session_id;
    } catch { /* not JSON */ }
  }));
  await page.goto("/chat");
  await page.waitForSelector("body[data-conn=open]");
  await page.waitForSelector("#emergency a.tel");
  result.weight = {
    files: bytes,
    total_bytes: Object.values(bytes).reduce((a, b) => a + b, 0),
    // What the browser says it moved over the wire (headers included), page plus every file.
    transfer_bytes: await page.evaluate(() => [
      ...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource"),
    ].reduce((sum, e) => sum + (e.transferSize || 0), 0)),
    requests: Object.keys(bytes).length,
  };

  // -- safety contacts: the region's emergency number and the partner line, tap to call ----------
  const emergency = await page.getAttribute("#emergency a", "href");
  check("the emergency number for the visitor's region is a tel: link", emergency === "tel:911", emergency);
  const hotline = await page.$$eval("#hotlines a", (as) => as.map((a) => a.getAttribute("href")));
  check("the partner hotline is a tel: link", hotline.includes("tel:+15550100"), hotline);

  // -- focus order: quick exit first; then the message box; Enter sends ---------------------------
  await page.keyboard.press("Tab");
  const firstFocus = await page.evaluate(() => document.activeElement.id);
  check("quick exit is the first thing the keyboard reaches", firstFocus === "quick-exit", firstFocus);
  await tabTo(page, () => document.activeElement.id === "compose-text");
  await page.keyboard.type("I can't sleep and I keep crying");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#transcript li[data-seq='1']");
  await page.waitForSelector("#queue-position");
  const status = await page.textContent("#status");
  check("the visitor sees a queue position and an honest wait", /number \d+ in the queue/.test(status) && /(as soon as we can|Estimated wait)/.test(status), status);

  // -- reflow: 320 CSS px wide, nothing scrolls sideways ---------------------------------------------
  await page.setViewportSize({ width: 320, height: 640 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check("at 320 px (200 % zoom) nothing scrolls sideways", overflow <= 0, overflow);
  result.axe.push(await axe(page, "visitor page at 320 px"));

  // -- erasure, explained and done from the page -------------------------------------------------------
  await page.click(".privacy summary");
  await page.click("#erase");
  await page.waitForSelector("#erase-confirm:not([hidden])");
  const focused = await page.evaluate(() => document.activeElement.id);
  check("the erase confirmation takes the focus", focused === "erase-confirm", focused);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#ended:not([hidden])");
  const ended = await page.textContent("#ended-text");
  check("the page confirms the erasure", /erased/.test(ended), ended);
  check("the tab no longer holds the chat", (await page.evaluate(() => sessionStorage.getItem("beacon.chat"))) === null);

  // -- the dashboard refuses a bad token and says so ----------------------------------------------------
  const dash = await newPage(browser, { viewport: { width: 1024, height: 768 } });
  await dash.goto("/dashboard");
  await dash.keyboard.type("bv_not-a-real-token");
  await dash.keyboard.press("Enter");
  await dash.waitForFunction(() => /not accepted/.test(document.getElementById("signin-error").textContent));
  check("a bad token is refused on the sign-in form", !(await dash.isVisible("#app")));
  check("…and is not kept in the tab", (await dash.evaluate(() => sessionStorage.length)) === 0);
  result.axe.push(await axe(dash, "dashboard sign-in"));

  // -- a token revoked while signed in: after the reconnect, back to sign-in, no retry loop --------
  await dash.fill("#token", process.env.BEACON_TOKEN);
  await dash.press("#token", "Enter");
  await dash.waitForSelector("body[data-conn=open]");
  ask("revoke_restart", { volunteer_id: process.env.BEACON_VOLUNTEER_ID });
  await until("done");
  await dash.waitForSelector("#signin:not([hidden])");
  await dash.waitForSelector("body[data-conn=stopped]");
  const why = await dash.textContent("#signin-error");
  check("a token revoked meanwhile ends at the sign-in form, not in a reconnect loop", /not accepted|no longer valid/.test(why), why);

  result.problems = [...page.problems, ...dash.problems].filter((p) => !/WebSocket connection|Failed to load resource/.test(p));
  check("no script errors", result.problems.length === 0, result.problems);
  check("axe: no serious or critical violations", result.axe.every((a) => a.serious === 0), result.axe);
});
