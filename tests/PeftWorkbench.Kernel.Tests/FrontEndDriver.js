// Drives Jupyter Notebook 6.4 in Debian's headless Chromium with puppeteer-core, as a user would: open a notebook, Run
// All, wait for every cell, then read what the page shows. FrontEndTests.cs starts the server and this script.
//
// usage: node FrontEndDriver.js PUPPETEER_CORE_DIR CHROMIUM BASE_URL TOKEN USER_DATA_DIR JOBS_JSON
//   JOBS_JSON: [{"path": "workbench/00-tour.ipynb", "kernel": "peft-workbench", "interrupt": true, "screenshot": "/abs/file.png"}, ...]
// Prints one JSON line per job on stdout:
//   {path, kernel, openSeconds, firstCellSeconds, runAllSeconds, codeCells, unrun: [i], errors: [{cell, ename, evalue}],
//    stderr: [{cell, text}], charts, chartsWithSvg, interrupt?: {stopSeconds, stoppedOutput, stateAfter}}
// Exits 1 with the reason on stderr when the page never becomes usable (no kernel, a dialog, a time-out).
"use strict";
const [puppeteerDir, chromium, base, token, userDataDir, jobsJson] = process.argv.slice(2);
const puppeteer = require(puppeteerDir);
const jobs = JSON.parse(jobsJson);

const sleep = ms => new Promise(r => setTimeout(r, ms));
const seconds = t0 => Math.round((Date.now() - t0) / 100) / 10;

async function waitFor(page, what, predicate, timeoutMs, arg) {
    const t0 = Date.now();
    for (;;) {
        if (await page.evaluate(predicate, arg)) return;
        if (Date.now() - t0 > timeoutMs) {
            const state = await page.evaluate(() => ({
                dialog: document.querySelector(".modal.in .modal-body")?.innerText ?? "",
                kernel: document.querySelector("#notification_kernel")?.innerText ?? "",
                connected: window.Jupyter?.notebook?.kernel?.is_connected?.() ?? null, busy: window.Jupyter?.notebook?.kernel_busy ?? null,
            }));
            throw new Error(`${what}: not within ${timeoutMs / 1000} s; the page: ${JSON.stringify(state)}`);
        }
        await sleep(100);
    }
}

async function runJob(browser, job) {
    const page = await browser.newPage();
    page.on("dialog", d => d.accept()); // "leave page?" and the like
    await page.setViewport({ width: 1280, height: 900 });
    const t0 = Date.now();
    const response = await page.goto(`${base}/notebooks/${job.path}?token=${token}`, { waitUntil: "load", timeout: 60000 });
    if (!response.ok()) throw new Error(`${job.path}: the server answered ${response.status()} ${response.statusText()}`);
    await waitFor(page, `${job.path}: the kernel to connect`,
        () => window.Jupyter?.notebook?.kernel?.is_connected?.() === true && Jupyter.notebook.kernel_busy !== true, 120000);
    const result = { path: job.path, kernel: await page.evaluate(() => Jupyter.notebook.kernel.name), openSeconds: seconds(t0) };
    if (job.kernel && result.kernel !== job.kernel) throw new Error(`${job.path}: the server started kernel ${result.kernel}, not ${job.kernel}`);

    // The kernel's status as the page last heard it (iopub: a cell's outputs come before its "idle").
    await page.evaluate(() => {
        window.frontEndBusy = false;
        Jupyter.notebook.events.on("kernel_busy.Kernel", () => { window.frontEndBusy = true; });
        Jupyter.notebook.events.on("kernel_idle.Kernel", () => { window.frontEndBusy = false; });
    });
    const outputCount = () => page.evaluate(() => Jupyter.notebook.get_cells().reduce((n, c) => n + (c.output_area?.outputs.length ?? 0), 0));

    // Run All, and note when the first code cell's prompt gets its number.
    const t1 = Date.now();
    await page.evaluate(() => Jupyter.notebook.execute_all_cells());
    const first = await page.evaluate(() => Jupyter.notebook.get_cells().findIndex(c => c.cell_type === "code"));
    await waitFor(page, `${job.path}: the first code cell`, i => Jupyter.notebook.get_cell(i).input_prompt_number !== "*", 300000, first);
    result.firstCellSeconds = seconds(t1);
    // A code cell is done when its prompt is no longer '*' (a number after it ran, blank when the kernel aborted it).
    await waitFor(page, `${job.path}: Run All`, () => Jupyter.notebook.get_cells().every(c => c.cell_type !== "code" || c.input_prompt_number !== "*"), 600000);
    result.runAllSeconds = seconds(t1);
    // A prompt gets its number from the shell reply, which may overtake the cell's outputs on iopub (seen: an error
    // output missing at this point): wait for the kernel's idle, then until no output arrives for a second.
    await waitFor(page, `${job.path}: the kernel to go idle`, () => window.frontEndBusy === false, 60000);
    for (let before = -1, now = await outputCount(); now !== before; ) { before = now; await sleep(1000); now = await outputCount(); }

    // Charts draw asynchronously after their output arrives: give plotly a moment to put its svg in every chart div.
    const chartState = () => {
        const divs = [...document.querySelectorAll(".output_area .plotly-graph-div, .output_area .js-plotly-plot")];
        const unique = [...new Set(divs)];
        return { charts: unique.length, withSvg: unique.filter(d => d.querySelector("svg.main-svg")).length };
    };
    const tc = Date.now();
    let charts = await page.evaluate(chartState);
    while (charts.withSvg < charts.charts && Date.now() - tc < 30000) { await sleep(200); charts = await page.evaluate(chartState); }
    result.charts = charts.charts;
    result.chartsWithSvg = charts.withSvg;
    result.chartOutputs = await page.evaluate(() => Jupyter.notebook.get_cells().flatMap(c => c.output_area?.outputs ?? [])
        .filter(o => String(o.data?.["text/html"] ?? "").includes("Plotly.newPlot")).length);

    Object.assign(result, await page.evaluate(() => {
        const cells = Jupyter.notebook.get_cells();
        const code = cells.map((c, i) => [c, i]).filter(([c]) => c.cell_type === "code");
        const text = t => Array.isArray(t) ? t.join("") : String(t ?? "");
        return {
            codeCells: code.length,
            unrun: code.filter(([c]) => typeof c.input_prompt_number !== "number").map(([, i]) => i),
            errors: code.flatMap(([c, i]) => c.output_area.outputs.filter(o => o.output_type === "error").map(o => ({ cell: i, ename: o.ename, evalue: o.evalue }))),
            stderr: code.flatMap(([c, i]) => c.output_area.outputs.filter(o => o.output_type === "stream" && o.name === "stderr").map(o => ({ cell: i, text: text(o.text) }))),
        };
    }));

    if (job.screenshot) {
        // The notebook scrolls inside #site: let it grow to its content so that the page is the whole notebook.
        await page.evaluate(() => { const site = document.getElementById("site"); site.style.height = "auto"; site.style.overflow = "visible"; });
        await page.screenshot({ path: job.screenshot, fullPage: true });
    }

    if (job.interrupt) {
        // State before, a cell that runs until it is interrupted, then the state read back in a new cell.
        const runCell = async (source, waitDone) => page.evaluate((src, wait) => new Promise(resolve => {
            const cell = Jupyter.notebook.insert_cell_at_bottom("code");
            cell.set_text(src);
            cell.execute();
            const i = Jupyter.notebook.find_cell_index(cell);
            if (!wait) return resolve(i);
            const poll = () => cell.input_prompt_number === "*" ? setTimeout(poll, 100) : resolve(i);
            poll();
        }), source, waitDone);
        const output = i => page.evaluate(i => Jupyter.notebook.get_cell(i).output_area.outputs.map(o =>
            o.output_type === "error" ? `${o.ename}: ${o.evalue}` : String(o.text ?? o.data?.["text/plain"] ?? "")).join("\n"), i);
        await runCell("var frontEndMarker = 41 + 1;", true);
        const loop = await runCell("while (true) { Cancellation.ThrowIfCancellationRequested(); System.Threading.Thread.Sleep(50); }", false);
        await waitFor(page, "the looping cell to start", i => Jupyter.notebook.kernel_busy === true || Jupyter.notebook.get_cell(i).input_prompt_number === "*", 30000, loop);
        await sleep(1500);
        const ti = Date.now();
        await page.evaluate(() => Jupyter.notebook.kernel.interrupt());
        await waitFor(page, "the interrupted cell to stop", i => Jupyter.notebook.get_cell(i).input_prompt_number !== "*", 60000, loop);
        const stopSeconds = seconds(ti);
        const after = await runCell("frontEndMarker", true);
        result.interrupt = { stopSeconds, stoppedOutput: await output(loop), stateAfter: await output(after) };
    }

    // End the kernel now (the server would keep it running after the page closes).
    await page.evaluate(() => new Promise(r => Jupyter.notebook.session.delete(r, r)));
    await page.close();
    return result;
}

(async () => {
    const browser = await puppeteer.launch({
        executablePath: chromium, userDataDir, headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--disable-sync", "--disable-quic"],
    });
    try {
        for (const job of jobs) console.log(JSON.stringify(await runJob(browser, job)));
    } finally {
        await browser.close();
    }
})().catch(e => { console.error(String(e?.stack ?? e)); process.exit(1); });
