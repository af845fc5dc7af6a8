// Shared by spec/observer/browser.mjs (the browser test) and bench/w14 (the
// benchmark): argv parsing, Debian's chromium driven headless by
// puppeteer-core, a page that records every console error, page error and
// request that leaves the Observer's origin, and waiting on a condition.
import puppeteer from "puppeteer-core";

// --name value pairs of argv into an object (a flag without a value is true).
export function parseArgs(argv, defaults = {}) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const m = argv[i].match(/^--([\w-]+)$/);
    if (!m) throw new Error(`unexpected argument ${argv[i]}`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) out[m[1]] = true;
    else out[m[1]] = argv[++i];
  }
  return out;
}

// The system chromium, headless, without anything that phones home.
export function launch(executablePath = "/usr/bin/chromium") {
  return puppeteer.launch({
    executablePath,
    headless: true,
    defaultViewport: { width: 1440, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
      "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--disable-extensions"],
  });
}

// A new page whose console errors, page errors and requests to another origin
// than `origin` are appended to problems (strings).
export async function watchedPage(browser, origin, problems) {
  const page = await browser.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()} (${m.location()?.url ?? "?"})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message ?? e}`));
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (/^(https?|wss?):$/.test(u.protocol) && u.origin !== origin) problems.push(`request to ${r.url()}`);
  });
  return page;
}

// Waits (timeout ms) until fn(...args), run in the page, is truthy; returns
// its value. The error names `what`.
export async function until(page, what, fn, timeout, ...args) {
  try {
    const h = await page.waitForFunction(fn, { timeout, polling: 25 }, ...args);
    return await h.jsonValue();
  } catch (e) {
    throw new Error(`${what}: not within ${timeout} ms (${e.message.split("\n")[0]})`);
  }
}
