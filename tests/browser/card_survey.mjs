// The visitor page shows a resource card a volunteer sent from the dashboard (title, text,
// tap-to-call, link) and, after the chat ends, the two-question survey, answered from the
// keyboard. The volunteer signs in on the dashboard, accepts, inserts a canned reply and sends a
// card found by search; the close is plain REST with the same token. Run by tests/browser/test_pages.py; one JSON result line.
import { BASE, axe, done, launch, newPage, shot, tabTo } from "./lib.mjs";

const result = { axe: [], checks: [] };
const check = (name, ok, detail = null) => {
  result.checks.push({ name, ok: Boolean(ok), detail });
  if (!ok) throw new Error(`check failed: ${name} ${detail === null ? "" : JSON.stringify(detail)}`);
};

const TOKEN = process.env.BEACON_TOKEN;

async function volunteer(method, path, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

const browser = await launch();
try {
  const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: "en-US" };
  const page = await newPage(browser, phone);
  page.on("websocket", (ws) => ws.on("framereceived", (f) => {
    try {
      const frame = JSON.parse(f.payload);
      if (frame.type === "session") result.session_id = frame.session_id;
    } catch { /* not JSON */ }
  }));
  await page.goto("/chat");
  await page.waitForSelector("body[data-conn=open]");
  await page.fill("#compose-text", "I can't sleep and my thoughts keep racing");
  await page.press("#compose-text", "Enter");
  await page.waitForSelector("#transcript li[data-seq='1']");
  const sid = result.session_id;
  check("the page learnt its session id", typeof sid === "string", sid);

  // -- a volunteer on the dashboard takes the chat, sends a canned reply and a resource card ---------
  const dash = await newPage(browser, { viewport: { width: 1280, height: 900 } });
  await dash.goto("/dashboard");
  await dash.fill("#token", TOKEN);
  await dash.click("#signin-form button[type=submit]");
  await dash.waitForSelector("body[data-conn=open][data-presence=online]");
  await dash.click(`.offer[data-session="${sid}"] .accept`);
  const pane = `.chat[data-session="${sid}"]`;
  await dash.waitForSelector(pane);
  await page.waitForSelector("body[data-status=active]");
  await dash.click(`${pane} .helpers summary`);
  await dash.waitForSelector(`#canned-${sid} option:nth-child(2)`, { state: "attached" });
  await dash.selectOption(`#canned-${sid}`, { label: "Introduce yourself" });
  const drafted = await dash.inputValue(`#msg-${sid}`);
  check("the canned reply is filled on the server with the volunteer's name", drafted === `Hi, I'm ${process.env.BEACON_NAME}. I'm here to listen.`, drafted);
  await dash.click(`${pane} .compose button[type=submit]`);
  await page.waitForFunction((text) => [...document.querySelectorAll("#transcript .from-volunteer .text")].some((p) => p.textContent === text), drafted);
  await dash.fill(`#res-${sid}`, "night");
  await dash.click(`${pane} .resource-search button`);
  await dash.click(`${pane} .resource-results button`);
  await dash.waitForSelector(`${pane} .messages .card`);
  result.axe.push(await axe(dash, "dashboard chat pane with canned replies and resources"));
  const sent = { seq: await dash.$eval(`${pane} .messages li:has(.card)`, (li) => Number(li.dataset.seq)) };
  const card = await page.waitForSelector(`#transcript li.card[data-seq='${sent.seq}']`);
  const title = await card.$eval(".resource-title", (el) => el.textContent);
  check("the card shows the resource's title", title === "Night line", title);
  const text = await card.$eval(".text", (el) => el.textContent);
  check("…and its reviewed text", /Trained listeners/.test(text), text);
  const tel = await card.$eval("a.tel", (a) => a.getAttribute("href"));
  check("the phone number is tap-to-call", tel === "tel:+44800123456", tel);
  const link = await card.$eval("a[target=_blank]", (a) => [a.getAttribute("href"), a.getAttribute("rel")]);
  check("the link opens the https address in a new tab, without a referrer", link[0] === "https://example.org/night-line" && /noreferrer/.test(link[1]), link);
  result.axe.push(await axe(page, "visitor page with a resource card"));
  result.shots = [await shot(page, "visitor-card")];

  // -- the volunteer asks consent for a handoff's extras; the visitor shares the conversation only ---
  const asked = await volunteer("POST", `/v1/dashboard/sessions/${sid}/consent-request`);
  const question = await page.waitForSelector(`#transcript li[data-seq='${asked.seq}'] form.consent`);
  const ticked = await question.$$eval("input[type=checkbox]", (boxes) => boxes.map((b) => `${b.name}:${b.checked}`));
  check("the question offers both extras, nothing ticked in advance", ticked.join(",") === "transcript:false,contact:false", ticked);
  await (await question.$("input[name=contact]")).click();
  await (await question.$("button[name=share]")).click();
  const missing = await question.$eval(".consent-status", (p) => p.textContent);
  check("a ticked number with no number is asked for, not sent", /Write the number/.test(missing), missing);
  await (await question.$("input[name=contact]")).click();
  await (await question.$("input[name=transcript]")).click();
  await (await question.$("button[name=share]")).click();
  await page.waitForFunction((seq) => /this conversation\./.test(document.querySelector(`#transcript li[data-seq='${seq}'] .consent-status`).textContent), asked.seq);
  const confirmed = await question.$eval(".consent-status", (p) => p.textContent);
  check("the server's confirmation says what will be shared", /get this conversation\./.test(confirmed) && !/number/.test(confirmed), confirmed);
  result.axe.push(await axe(page, "visitor page consent question"));
  result.shots.push(await shot(page, "visitor-consent"));

  // -- the volunteer closes; the page asks the two questions -------------------------------------------
  await volunteer("POST", `/v1/dashboard/sessions/${sid}/close`, { disposition: "supported", risk_level: "low" });
  await page.waitForSelector("#survey:not([hidden])");
  const legends = await page.$$eval("#survey legend", (ls) => ls.map((l) => l.textContent));
  check("the survey asks whether it helped and whether they feel safer", legends.length === 2 && /help/.test(legends[0]) && /safer/.test(legends[1]), legends);
  check("the survey has no text box", (await page.$$("#survey textarea, #survey input[type=text]")).length === 0);
  // Keyboard only: Tab into the first scale, arrows pick, Tab on to the next scale.
  await tabTo(page, () => document.activeElement.name === "helped");
  for (let i = 0; i < 3; i += 1) await page.keyboard.press("ArrowRight");
  await page.keyboard.press("Tab");
  const second = await page.evaluate(() => document.activeElement.name);
  check("Tab moves from one question to the next", second === "safer", second);
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  const picked = await page.evaluate(() => [...document.querySelectorAll("#survey input:checked")].map((i) => `${i.name}=${i.value}`));
  check("the arrow keys picked 4 and 3", picked.join(",") === "helped=4,safer=3", picked);
  result.axe.push(await axe(page, "visitor page survey"));
  result.shots.push(await shot(page, "visitor-survey", { fullPage: true }));
  await page.click("#survey-send");
  await page.waitForFunction(() => /Thank you/.test(document.getElementById("survey-done").textContent));
  check("the survey is gone once answered", await page.isHidden("#survey"));

  result.problems = [...page.problems, ...dash.problems].filter((p) => !/WebSocket connection|Failed to load resource/.test(p));
  check("no script errors", result.problems.length === 0, result.problems);
  check("axe: no serious or critical violations", result.axe.every((a) => a.serious === 0), result.axe);
  result.ok = true;
} catch (err) {
  result.ok = false;
  result.error = String(err && err.stack ? err.stack : err);
  result.toasts = await Promise.all(browser.contexts().flatMap((c) => c.pages()).map((p) => p.evaluate(() => document.getElementById("toast")?.textContent ?? null).catch(() => null)));
} finally {
  done(result);
  await browser.close();
}
process.exit(result.ok ? 0 : 1);
