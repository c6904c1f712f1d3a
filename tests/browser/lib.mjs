// Shared by the browser scenarios: Debian's chromium through playwright-core, axe-core in the
// page, waits on conditions (never on time), and one JSON result line on stdout.
import { createRequire } from "node:module";
import { readFileSync, mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export const BASE = process.env.BEACON_BASE_URL || "http://127.0.0.1:8000";
export const TIMEOUT = Number(process.env.BEACON_BROWSER_TIMEOUT_MS || 30000);
export const SHOTS = process.env.BEACON_SCREENSHOTS_DIR || null;

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // playwright-core gives every launch a fresh, empty --user-data-dir of its own.
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
    timeout: 60000,
  });
}

/** Counts every tone the page starts (the dashboard's audible alert) in window.__tones. */
export const COUNT_TONES = () => {
  window.__tones = 0;
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function counted(...args) {
    window.__tones += 1;
    return start.apply(this, args);
  };
};

export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ baseURL: BASE, ...options });
  await context.addInitScript(COUNT_TONES);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
  });
  page.problems = problems;
  return page;
}

/** axe-core in the page; only serious and critical violations count. */
export async function axe(page, label) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help, targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  const serious = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  return { label, violations: result.length, serious: serious.length, details: result };
}

export async function shot(page, name, options = {}) {
  if (!SHOTS) return null;
  mkdirSync(SHOTS, { recursive: true });
  const path = `${SHOTS}/${name}.png`;
  await page.screenshot({ path, ...options });
  return path;
}

/** Press Tab until the focused element matches, then return; keyboard only, bounded. */
export async function tabTo(page, predicate, arg, { max = 80, reverse = false } = {}) {
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press(reverse ? "Shift+Tab" : "Tab");
    if (await page.evaluate(predicate, arg)) return i + 1;
  }
  throw new Error(`focus never reached the target after ${max} presses`);
}

/** Lines from the test runner on stdin (e.g. "restarted"), one promise per awaited word. */
const waiting = [];
const heard = [];
process.stdin.setEncoding("utf8");
let buffer = "";
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  let i;
  while ((i = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, i).trim();
    buffer = buffer.slice(i + 1);
    const w = waiting.findIndex((x) => x.word === line);
    if (w >= 0) waiting.splice(w, 1)[0].resolve();
    else heard.push(line);
  }
});

export function ask(event, data = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
}

export function until(word) {
  const i = heard.indexOf(word);
  if (i >= 0) {
    heard.splice(i, 1);
    return Promise.resolve();
  }
  return new Promise((resolve) => waiting.push({ word, resolve }));
}

export function done(result) {
  process.stdout.write(`${JSON.stringify({ event: "result", ...result })}\n`);
}

/** A named check that throws (ending the scenario) when it fails; every check is in the result. */
export function checker(result) {
  result.checks ||= [];
  return (name, ok, detail = null) => {
    result.checks.push({ name, ok: Boolean(ok), detail });
    if (!ok) throw new Error(`check failed: ${name} ${detail === null ? "" : JSON.stringify(detail)}`);
  };
}

/** A staff member signed in on the dashboard, the socket open; the types of the frames the page
 * sends are collected in ``sent``. */
export async function staffPage(browser, token, sent) {
  const page = await newPage(browser, { viewport: { width: 1280, height: 1000 } });
  page.on("websocket", (ws) => ws.on("framesent", (f) => {
    try { sent.push(JSON.parse(f.payload).type); } catch { /* not JSON */ }
  }));
  await page.goto("/dashboard");
  await page.fill("#token", token);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("body[data-conn=open]");
  return page;
}

/** Run a scenario in one browser: its result line is printed whatever happens, and the exit
 * code says whether it passed. */
export async function scenario(result, body) {
  const browser = await launch();
  try {
    await body(browser);
    result.ok = true;
  } catch (err) {
    result.ok = false;
    result.error = String(err && err.stack ? err.stack : err);
  } finally {
    done(result);
    await browser.close();
  }
  process.exit(result.ok ? 0 : 1);
}
