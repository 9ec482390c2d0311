// Drives the dashboard in Debian's headless Chromium (playwright-core, no bundled browser). Environment:
//   BASE, KEY, DONE_ID, PENDING_ID (cancelled, then retried), VIDEO_URL, XSS (a string the page must show as text), OUT (screenshot dir),
//   HIST_COMPLETED / HIST_FAILED (jobs the worker finished in the last hour), TIMINGS (the done job's stored timings)
// Prints one JSON line {"checks": [[ok, what], ...]} for test_dashboard.py to assert.
import { chromium } from "playwright-core";

const env = process.env;
const checks = [];
const check = (ok, what) => checks.push([!!ok, what]);

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push("pageerror: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });
  let dialogs = 0;
  page.on("dialog", async (d) => { dialogs++; await d.accept(env.KEY); });
  await page.addInitScript(() => { window.__xss = false; });

  await page.goto(env.BASE + "/", { waitUntil: "load" });
  await page.waitForSelector("#health .ok", { timeout: 10000 });
  check(/healthy/.test(await page.textContent("#health")), "health shown");
  check(/queue \d+/.test(await page.textContent("#health")), "queue depth shown");
  check(/API key/.test(await page.textContent("#jobs tbody")), "asks for the key before listing jobs");

  await page.fill("#apikey", env.KEY);
  await page.click("#keyform button");
  await page.waitForSelector(`tr[data-id="${env.DONE_ID}"]`, { timeout: 10000 });
  await page.waitForSelector(`tr[data-id="${env.PENDING_ID}"]`, { timeout: 10000 });
  const doneRow = await page.textContent(`tr[data-id="${env.DONE_ID}"]`);
  check(/COMPLETED/.test(doneRow) && /done/.test(doneRow), "completed job listed with status and stage: " + doneRow);
  check(/\d+(\.\d)? s|\d+ ms/.test(doneRow), "durations shown: " + doneRow);

  await page.selectOption("#status-filter", "PENDING");
  await page.waitForSelector(`tr[data-id="${env.DONE_ID}"]`, { state: "detached", timeout: 10000 });
  check(await page.$(`tr[data-id="${env.PENDING_ID}"]`), "status filter keeps the pending job");
  await page.selectOption("#status-filter", "");
  await page.waitForSelector(`tr[data-id="${env.DONE_ID}"]`, { timeout: 10000 });
  // the last hour's charts: bars per outcome add up to what the worker ran, the queue line has its samples
  await page.waitForSelector("#chart-jobs rect.bar", { timeout: 10000 });
  await page.waitForSelector("#chart-queue circle.point", { timeout: 10000 });
  const bars = await page.$$eval("#chart-jobs rect.bar", (rs) => rs.map((r) => [r.dataset.outcome, +r.dataset.value,
    +r.getAttribute("height"), +r.getAttribute("width")]));
  const sumOf = (o) => bars.filter((b) => b[0] === o).reduce((a, b) => a + b[1], 0);
  check(sumOf("completed") === +env.HIST_COMPLETED && sumOf("failed") === +env.HIST_FAILED,
    "throughput bars add up to the jobs run: " + JSON.stringify(bars));
  check(bars.every((b) => b[2] > 0 && b[3] > 0), "every bar has a visible size");
  const tallest = bars.reduce((a, b) => (b[1] > a[1] ? b : a), bars[0]);
  check(bars.every((b) => Math.abs(b[2] / b[1] - tallest[2] / tallest[1]) < 0.01), "bar heights proportional to counts");
  const points = await page.$$eval("#chart-queue circle.point", (ps) => ps.map((p) => +p.dataset.value));
  check(points.length >= 1 && points.every((v) => v >= 0), "queue depth points: " + JSON.stringify(points));
  check(await page.$("#chart-queue path.line"), "queue depth line drawn");
  check(/completed 3/.test(await page.textContent("#charts .legend")), "legend gives the totals");
  await page.screenshot({ path: env.OUT + "/dashboard-list.png", fullPage: true });
  await page.setViewportSize({ width: 1100, height: 640 });
  await page.screenshot({ path: env.OUT + "/docs-list.png" });
  await page.setViewportSize({ width: 1280, height: 900 });

  // the completed job's page
  await page.click(`tr[data-id="${env.DONE_ID}"] a`);
  await page.waitForSelector("ol.timeline li", { timeout: 10000 });
  const summary = await page.textContent("#summary");
  check(summary.includes(env.XSS), "summary rendered as text, markup intact: " + summary);
  check((await page.$$("#job-view img, #job-view script")).length === 0, "no element injected from the data");
  check(!(await page.evaluate(() => window.__xss)), "no script from the data ran");
  const links = await page.$$eval("ol.timeline a.ts", (as) => as.map((a) => [a.textContent, a.href]));
  check(links.length === 3, "three timeline entries: " + JSON.stringify(links));
  const want = { "00:00": 0, "01:30": 90, "1:02:03": 3723 };
  for (const [ts, href] of links) {
    const u = new URL(href);
    check(u.searchParams.get("t") === want[ts] + "s" && u.searchParams.get("v") === new URL(env.VIDEO_URL).searchParams.get("v"),
      `timestamp ${ts} links to the video at ${want[ts]}s: ${href}`);
  }
  const tl = await page.textContent("ol.timeline");
  check(tl.includes("Opening") && tl.includes("a detail"), "timeline descriptions and details");
  check((await page.$$eval("#takeaways li", (l) => l.map((x) => x.textContent))).join("|") === "first point|second point",
    "takeaways");
  check((await page.$$eval(".keywords span", (l) => l.map((x) => x.textContent))).join("|") === "alpha|beta", "keywords");
  const va = await page.textContent("table.visual");
  check(va.includes("Chart") && va.includes("revenue chart"), "visual audit: " + va);
  check(!(await page.$("#job-view button.cancel")), "no cancel button on a finished job");
  // the stage waterfall: stored stages in pipeline order, each bar starting where the previous ended, widths to scale
  const timings = JSON.parse(env.TIMINGS);
  const stages = await page.$$eval("#waterfall rect.stage", (rs) => rs.map((r) => [r.dataset.stage, +r.dataset.seconds,
    +r.getAttribute("x"), +r.getAttribute("width")]));
  const order = ["metadata", "audio", "download", "scenes", "upload", "file_processing", "analyze"].filter((k) => k in timings);
  const rest = timings.total - order.reduce((a, k) => a + timings[k], 0);
  check(JSON.stringify(stages.map((r) => r[0])) === JSON.stringify(rest > 0.001 ? [...order, "other"] : order),
    "waterfall stages in order: " + JSON.stringify(stages));
  check(stages.every((r) => r[0] === "other" ? Math.abs(r[1] - rest) < 1e-6 : r[1] === timings[r[0]]), "waterfall seconds from the timings");
  check(stages.every((r, i) => i === 0 || Math.abs(r[2] - (stages[i - 1][2] + stages[i - 1][3])) < 0.01), "each stage starts where the last ended");
  const perSec = stages[0][3] / stages[0][1];
  check(stages.every((r) => Math.abs(r[3] / r[1] - perSec) < 0.01 * perSec), "bar widths proportional to seconds");
  check(/total 14\.0 s/.test(await page.textContent("#waterfall")), "waterfall shows the total");
  await page.screenshot({ path: env.OUT + "/dashboard-job.png", fullPage: true });
  await page.setViewportSize({ width: 1100, height: 900 });
  await page.screenshot({ path: env.OUT + "/docs-job.png" });
  await page.setViewportSize({ width: 1280, height: 900 });

  // cancel the pending job from its page: the button asks for the key (30 s waits: CI runs this beside other tests
  // under ASan and valgrind)
  await page.goto(env.BASE + "/#/job/" + env.PENDING_ID);
  await page.waitForSelector("#job-view button.cancel", { timeout: 30000 });
  await page.click("#job-view button.cancel");
  await page.waitForFunction(() => /CANCELLED/.test(document.getElementById("notice").textContent), null, { timeout: 30000 });
  check(dialogs === 1, "the cancel button asked for the API key once");
  await page.waitForFunction(() => /CANCELLED/.test((document.querySelector("#job-view dl") || {}).textContent || ""), null, { timeout: 30000 });
  check(!(await page.$("#job-view button.cancel")), "cancel button gone once cancelled");
  await page.screenshot({ path: env.OUT + "/dashboard-cancelled.png", fullPage: true });
  // retry it from the same page: the button asks for the key again and the job is charged and PENDING again
  await page.waitForSelector("#job-view button.retry", { timeout: 30000 });
  await page.click("#job-view button.retry");
  await page.waitForFunction(() => /is PENDING again \(1 credit/.test(document.getElementById("notice").textContent), null,
    { timeout: 30000 });
  check(dialogs === 2, "the retry button asked for the API key once");
  check(problems.length === 0, "no page errors or CSP violations: " + JSON.stringify(problems));
} catch (e) {
  check(false, "browser run: " + (e.stack || e));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ checks }));
