// A second supervisor confirms, from the alert on the dashboard, the mute another supervisor
// asked for on a high chat (issue 14: a high+ session is muted only with two supervisors).
// tests/browser/test_supervision_page.py asks for the mute over REST once this page is signed in,
// and checks what the volunteer's socket and the audit trail say afterwards. One JSON line.
import { axe, done, launch, newPage } from "./lib.mjs";

const token = process.env.BEACON_SUPERVISOR_TOKEN;
const sid = process.env.BEACON_SESSION_ID;
const result = { axe: [], checks: [], sent: [] };
const check = (name, ok, detail = null) => {
  result.checks.push({ name, ok: Boolean(ok), detail });
  if (!ok) throw new Error(`check failed: ${name} ${detail === null ? "" : JSON.stringify(detail)}`);
};

const browser = await launch();
try {
  const sup = await newPage(browser, { viewport: { width: 1280, height: 1000 } });
  sup.on("websocket", (ws) => ws.on("framesent", (f) => {
    try { result.sent.push(JSON.parse(f.payload).type); } catch { /* not JSON */ }
  }));
  await sup.goto("/dashboard");
  await sup.fill("#token", token);
  await sup.click("#signin-form button[type=submit]");
  await sup.waitForSelector("body[data-conn=open]");
  await sup.click("#view-supervise");
  const confirm = `#alerts li[data-session="${sid}"] button.confirm-mute`;
  await sup.waitForSelector(confirm, { timeout: 60000 });
  const alert = await sup.textContent(`#alerts li[data-session="${sid}"]`);
  check("the alert says a second supervisor is needed", alert.includes("second supervisor"), alert);
  result.axe.push(await axe(sup, "dashboard with a mute to confirm"));
  await sup.click(confirm);
  await sup.waitForFunction(() => document.getElementById("toast").textContent.includes("Mute active"));
  await sup.waitForFunction((s) => !document.querySelector(`#alerts li[data-session="${s}"] button.confirm-mute`), sid);
  check("the page sent confirm_mute", result.sent.includes("confirm_mute"), result.sent);
  check("no page errors", sup.problems.length === 0, sup.problems);
  result.ok = true;
} catch (err) {
  result.ok = false;
  result.error = String(err && err.stack ? err.stack : err);
} finally {
  done(result);
  await browser.close();
}
process.exit(result.ok ? 0 : 1);
