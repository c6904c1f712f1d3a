// A supervisor on the dashboard observes a live chat, whispers to its volunteer, joins it,
// mutes the visitor and lifts the mute, with the buttons (issue 14). The visitor and the volunteer
// are real websocket clients of tests/browser/test_supervision_page.py, which checks what they received
// and the audit trail afterwards. One JSON result line.
import { axe, checker, scenario, staffPage } from "./lib.mjs";

const sid = process.env.BEACON_SESSION_ID;
const said = process.env.BEACON_VISITOR_SAID;
const note = process.env.BEACON_WHISPER;
const result = { axe: [], sent: [] };
const check = checker(result);

await scenario(result, async (browser) => {
  const sup = await staffPage(browser, process.env.BEACON_SUPERVISOR_TOKEN, result.sent);
  await sup.click("#view-supervise");
  const observe = `#live-rows tr[data-session="${sid}"] button.observe`;
  await sup.waitForSelector(observe);
  await sup.click(observe);

  const pane = `section.chat[data-session="${sid}"]`;
  await sup.waitForSelector(`${pane} li.from-visitor`);
  const seen = await sup.textContent(`${pane} .messages`);
  check("observing shows the chat's messages", seen.includes(said), seen);
  result.axe.push(await axe(sup, "dashboard observing"));

  await sup.fill(`${pane} .whisper-form input`, note);
  await sup.click(`${pane} .whisper-form button[type=submit]`);
  await sup.waitForSelector(`${pane} li.whisper`);
  const whispered = await sup.textContent(`${pane} li.whisper`);
  check("the whisper shows as staff-only in the pane", whispered.includes(note), whispered);

  await sup.click(`${pane} button.join`);
  await sup.waitForSelector(`${pane} li.from-system`);
  const line = await sup.textContent(`${pane} li.from-system`);
  check("joining puts the visitor-visible line in the transcript", /supervisor has joined/.test(line), line);
  check("the pane says the supervisor joined", (await sup.textContent(`${pane} .chat-status`)).includes("joined"));

  await sup.fill(`${pane} .mute-form input`, "abusive messages");
  await sup.click(`${pane} .mute-form button[type=submit]`);
  await sup.waitForFunction(() => document.getElementById("toast").textContent.includes("Mute active"));
  await sup.click(`${pane} button.unmute`);
  await sup.waitForFunction(() => document.getElementById("toast").textContent.includes("Mute lifted"));
  check("the buttons sent observe, whisper, join, mute and unmute", ["observe", "whisper", "join", "mute", "unmute"].every((t) => result.sent.includes(t)), result.sent);
  check("no page errors", sup.problems.length === 0, sup.problems);
});
