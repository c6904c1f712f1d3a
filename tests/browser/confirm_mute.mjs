// A second supervisor confirms, from the alert on the dashboard, the mute another supervisor
// asked for on a high chat (issue 14: a high+ session is muted only with two supervisors).
// tests/browser/test_supervision_page.py asks for the mute over REST once this page is signed in,
// and checks what the volunteer's socket and the audit trail say afterwards. One JSON line.
import { axe, checker, scenario, staffPage } from "./lib.mjs";

const sid = process.env.BEACON_SESSION_ID;
const result = { axe: [], sent: [] };
const check = checker(result);

await scenario(result, async (browser) => {
  const sup = await staffPage(browser, process.env.BEACON_SUPERVISOR_TOKEN, result.sent);
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
});
