// Drives the view page in headless Chromium (Debian's /usr/bin/chromium, software GL) for the tests and
// the benchmark: `node headless.mjs PLAN.json NODE_MODULES` (the npm directory holding puppeteer-core).
// The plan is a list of steps; the result is one JSON line on stdout:
//   { results: [per step], console: [warnings and errors], failed: [failed requests],
//     requestsAfterMark: [urls requested after a "mark" step] }
// Steps: open {url, size, half (planes as RGBA16F), port (a port's passes, see triplane.js)}, orbit {orbit}, weights {weights}, slider {name, value} (a real input event),
// shot {canvas, file} (a screenshot of one canvas), click {selector}, ticks {count} (waits until the
// page has applied that many more animation frames), fps {frames}, mark, pause {message} (prints
// {"paused": message} and waits for a line on stdin: the caller acts, e.g. stops the server).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const puppeteer = createRequire(join(process.argv[3], 'noop.js'))('puppeteer-core');

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--force-color-profile=srgb',
    '--disable-dev-shm-usage'],
});
const out = { results: [], console: [], failed: [], requestsAfterMark: [] };
let marked = false;
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (['error', 'warn', 'warning', 'assert'].includes(m.type())) out.console.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => out.failed.push(`${r.url()}: ${r.failure() && r.failure().errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) out.failed.push(`${r.url()}: HTTP ${r.status()}`); });
  page.on('request', (r) => { if (marked) out.requestsAfterMark.push(r.url()); });
  for (const step of plan) {
    let result = null;
    if (step.op === 'open') {
      await page.setViewport({ width: 2 * step.size + 200, height: step.size + 400, deviceScaleFactor: 1 });
      const query = `?size=${step.size}${step.half ? '&planes=half' : ''}${step.port ? `&port=${step.port}` : ''}`;
      await page.goto(step.url + query, { waitUntil: 'load' });
      result = await page.evaluate(async () => { const v = await window.avatarView; return { names: v.names, background: v.background }; });
    } else if (step.op === 'orbit') {
      result = await page.evaluate(async (o) => (await window.avatarView).setOrbit(o), step.orbit);
    } else if (step.op === 'weights') {
      result = await page.evaluate(async (w) => (await window.avatarView).setWeights(w), step.weights);
    } else if (step.op === 'slider') {
      await page.$eval(`input[data-morph="${step.name}"]`, (input, value) => {
        input.value = value;
        input.dispatchEvent(new Event('input', { bubbles: true }));
      }, step.value);
      result = await page.evaluate(async () => (await window.avatarView).renderNow());
    } else if (step.op === 'shot') {
      const canvas = await page.$(`#${step.canvas}`);
      await canvas.screenshot({ path: step.file, type: 'png' });
      result = step.file;
    } else if (step.op === 'click') {
      await page.click(step.selector);
    } else if (step.op === 'ticks') {
      const start = await page.evaluate(async () => (await window.avatarView).playbackTicks());
      await page.waitForFunction(async (n) => (await window.avatarView).playbackTicks() >= n, { timeout: 120000 },
        start + step.count);
    } else if (step.op === 'fps') {
      result = await page.evaluate(async (n) => (await window.avatarView).triplaneFps(n), step.frames);
    } else if (step.op === 'mark') {
      marked = true;
    } else if (step.op === 'pause') {
      process.stdout.write(JSON.stringify({ paused: step.message }) + '\n');
      await lines.next();
    } else {
      throw new Error(`unknown step ${step.op}`);
    }
    out.results.push(result);
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(0);
