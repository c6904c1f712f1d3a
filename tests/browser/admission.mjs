// A visitor refused for now (too many new chats from one address): the page stays calm and
// connects by itself after the server's retry_after_s. Run by tests/browser/test_pages.py
// against a server allowing one new session at a time.
import { checker, newPage, scenario } from "./lib.mjs";

const result = { checks: [] };
const check = checker(result);

await scenario(result, async (browser) => {
  const phone = { viewport: { width: 390, height: 844 }, isMobile: true };
  const first = await newPage(browser, phone);
  await first.goto("/chat");
  await first.waitForSelector("body[data-conn=open]");
  const second = await newPage(browser, phone);
  let refused = 0;
  second.on("websocket", (ws) => ws.on("framereceived", (f) => {
    if (String(f.payload).includes("too_many_sessions")) refused += 1;
  }));
  await second.goto("/chat");
  await second.waitForFunction(() => /Many people are starting chats/.test(document.getElementById("status").textContent));
  check("the refusal reads as a calm wait", (await second.textContent("#conn")) === "Connecting…", await second.textContent("#conn"));
  check("no error is shouted at the person", (await second.textContent("#compose-error")) === "");
  await second.waitForSelector("body[data-conn=open]", { timeout: 60000 });
  check("the page connected by itself after retry_after_s", refused >= 1, refused);
  await second.fill("#compose-text", "hello");
  await second.press("#compose-text", "Enter");
  await second.waitForSelector("#transcript li[data-seq='1']");
});
