// The console page (console/) in headless Chromium, as a member of staff
// uses it: t/61-console-browser.t starts Redis and nginx, then runs this
// with
//
//   CONSOLE_URL   the page (http://127.0.0.1:PORT/admin/console/)
//   OPEN_URL      the page beside an admin API without apikey_admin_scopes
//   API_URL       a location with `apikey on`, to try the keys made here
//   OUT_DIR       where screenshots go (the test's temporary directory)
//   CHROMIUM      the browser (Debian's /usr/bin/chromium)
//   TIME_FACTOR   scales the waits (APIKEY_TEST_TIME_FACTOR)
//
// and NODE_PATH pointing at puppeteer-core (build/browser/node_modules).
// Each check is one line of JSON on stdout, {"ok":..,"name":..,"diag":..},
// which the .t file turns into Test::More results; a key is never printed.

'use strict';

const path = require('path');
const puppeteer = require('puppeteer-core');

const CONSOLE_URL = process.env.CONSOLE_URL;
const OPEN_URL = process.env.OPEN_URL;
const API_URL = process.env.API_URL;
const OUT_DIR = process.env.OUT_DIR;
const FACTOR = Number(process.env.TIME_FACTOR) || 1;
const WAIT = 10000 * FACTOR;

const XSS_NAME = '<img src=x onerror=window.__xss=1>';

let shot = 0;


function report(ok, name, diag) {
    process.stdout.write(JSON.stringify({ ok: !!ok, name, diag }) + '\n');
    return ok;
}

function is(got, want, name) {
    return report(got === want, name, got === want ? undefined
        : `got: ${JSON.stringify(got)}\nwant: ${JSON.stringify(want)}`);
}


async function screenshot(page, what) {
    const file = path.join(OUT_DIR, `console-${++shot}-${what}.png`);
    await page.screenshot({ path: file, fullPage: true });
}


async function status(key) {
    const res = await fetch(API_URL, {
        headers: { Authorization: `Bearer ${key}` },
    });
    return res.status;
}


// The page has loaded its keys: the status line says how many, or that
// they could not be loaded.
async function listed(page) {
    const done = /^(No keys|\d+ keys?|The keys could not be loaded)\.$/;
    await page.waitForFunction((re) => new RegExp(re).test(
        document.getElementById('keys-status').textContent),
        { timeout: WAIT }, done.source);
}


// { name, key, scopes, state, buttons } of the row whose name is `name`
async function row(page, name) {
    return page.evaluate((name) => {
        for (const tr of document.querySelectorAll('#keys-body tr')) {
            if (tr.querySelector('th').textContent !== name) {
                continue;
            }
            const cell = (label) =>
                tr.querySelector(`[data-label="${label}"]`).textContent;
            const time = (label) => {
                const t = tr.querySelector(`[data-label="${label}"] time`);
                return t ? Date.parse(t.getAttribute('datetime')) / 1000
                         : null;
            };
            return {
                id: tr.dataset.id,
                hint: cell('Key'),
                scopes: cell('Scopes').trim(),
                state: cell('State'),
                created: time('Created'),
                expires: time('Expires'),
                expiresText: cell('Expires'),
                buttons: [...tr.querySelectorAll('button')]
                    .map((b) => b.textContent),
            };
        }
        return null;
    }, name);
}


async function activeId(page) {
    return page.evaluate(() => document.activeElement
        && (document.activeElement.id
            || document.activeElement.textContent.trim()));
}


// Types a name, ticks the first `scopeCount` scopes and makes the key with
// the keyboard alone; returns the key read from the one-time panel.
async function createWithKeyboard(page, name, scopeCount) {
    await page.focus('#name');
    await page.keyboard.type(name);

    for (let i = 0; i < scopeCount; i++) {
        await page.keyboard.press('Tab');
        await page.keyboard.press('Space');
    }

    for (let i = 0; i < 10 && await activeId(page) !== 'create-key'; i++) {
        await page.keyboard.press('Tab');
    }

    is(await activeId(page), 'create-key',
        'Tab goes on through the form to "Create key"');
    await page.keyboard.press('Enter');

    await page.waitForSelector('#new-key:not([hidden])', { timeout: WAIT });
    return page.$eval('#new-key-value', (i) => i.value);
}


async function main() {
    const errors = [];
    const offsite = [];
    const origin = new URL(CONSOLE_URL).origin;

    const browser = await puppeteer.launch({
        executablePath: process.env.CHROMIUM,
        headless: true,
        args: [
            ...(process.getuid && process.getuid() === 0
                ? ['--no-sandbox'] : []),
            '--disable-gpu', '--disable-dev-shm-usage',
            '--no-first-run', '--disable-extensions',
        ],
    });

    let page;

    try {
        const context = browser.defaultBrowserContext();
        await context.overridePermissions(origin,
            ['clipboard-read', 'clipboard-write',
             'clipboard-sanitized-write']);

        page = await browser.newPage();
        await page.setViewport({ width: 1200, height: 900 });
        page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
        page.on('console', (m) => {
            // a refused request is the test's doing, not the page's
            if (m.type() === 'error'
                && !/^Failed to load resource/.test(m.text()))
            {
                errors.push(`console: ${m.text()}`);
            }
        });
        page.on('request', (r) => {
            const u = r.url();
            if (!u.startsWith(origin + '/') && !u.startsWith('data:')) {
                offsite.push(u);
            }
        });
        page.on('dialog', (d) => {
            errors.push(`a native dialog: ${d.message()}`);
            d.dismiss();
        });

        await page.goto(CONSOLE_URL, { waitUntil: 'load', timeout: WAIT });
        await listed(page);
        await page.waitForSelector('#scopes-choices input',
            { timeout: WAIT });

        await page.keyboard.press('Tab');
        is(await activeId(page), 'name', 'Tab reaches the "Name" field first');

        is(await page.$eval('label[for="name"]', (l) => l.textContent),
            'Name', 'a field labelled "Name"');
        is(await page.$eval('#create-key', (b) => b.textContent),
            'Create key', 'a "Create key" button');
        is(await page.$$eval('#scopes-choices input',
            (l) => l.map((i) => i.value).join(' ')),
            'read:people write:people read:interviews',
            'the scopes offered are the location\'s apikey_admin_scopes');


        // create: the key is shown once, with a warning and "Copy"

        const key = await createWithKeyboard(page, 'Console test key', 1);
        report(/^ck_[0-9A-Za-z]{36}$/.test(key),
            'the new key is shown, with the location\'s prefix');
        is(await activeId(page), 'new-key',
            'focus moves to the new key\'s panel');
        report((await page.$eval('#new-key', (p) => p.textContent))
            .includes('won\'t be shown again'),
            'the panel warns that the key won\'t be shown again');

        await page.keyboard.press('Tab');
        await page.keyboard.press('Tab');
        is(await activeId(page), 'copy-key', 'Tab reaches "Copy"');
        await page.keyboard.press('Enter');
        await page.waitForFunction(() =>
            document.getElementById('copy-status').textContent !== '',
            { timeout: WAIT });
        is(await page.$eval('#copy-status', (s) => s.textContent),
            'Copied.', '"Copy" puts it on the clipboard');
        is(await page.evaluate(() => navigator.clipboard.readText()), key,
            'the clipboard holds the key');

        await listed(page);
        const made = await row(page, 'Console test key');
        report(made, 'the new key is in the list');
        is(made && made.hint, '…' + key.slice(-4),
            'listed with the key\'s last 4 characters as its hint');
        is(made && made.scopes, 'read:people', 'with its scope');
        is(made && made.state, 'active', 'active');
        // (the page asks for 30 days; the API's own tests hold it to the
        // second)
        report(made && Math.abs(made.expires - made.created - 30 * 86400)
            <= 1, 'expiring in 30 days, the preset chosen by default',
            made && `${made.created} to ${made.expires}`);
        process.stdout.write(JSON.stringify({ id: made && made.id }) + '\n');
        await screenshot(page, 'created');

        is(await status(key), 200, 'the key works on the protected API');

        await page.keyboard.press('Tab');
        is(await activeId(page), 'new-key-done', 'then "Done"');
        await page.keyboard.press('Enter');
        is(await page.$eval('#new-key-value', (i) => i.value), '',
            '"Done" takes the key off the page');
        is(await activeId(page), 'create-key',
            'and gives focus back to "Create key"');


        // reload: the key itself is gone for good

        await page.reload({ waitUntil: 'load', timeout: WAIT });
        await listed(page);
        const everything = await page.evaluate(() =>
            document.documentElement.outerHTML
            + [...document.querySelectorAll('input')]
                .map((i) => i.value).join(' '));
        report(!everything.includes(key),
            'after a reload the key is nowhere on the page');
        report(!(await page.evaluate(() => JSON.stringify(localStorage)
            + JSON.stringify(sessionStorage) + document.cookie))
            .includes(key), 'nor in what the page could have stored');
        report(await row(page, 'Console test key'),
            'and the key is still listed');


        // revoke, after a confirmation that can be declined

        const revokeButton = async () => {
            const h = await page.evaluateHandle(() =>
                [...document.querySelectorAll('#keys-body tr')]
                .find((tr) => tr.querySelector('th').textContent
                      === 'Console test key')
                .querySelector('button.revoke'));
            return h.asElement();
        };

        let b = await revokeButton();
        is(await b.evaluate((e) => e.textContent), 'Revoke',
            'the key has a "Revoke" button');
        is(await b.evaluate((e) => e.getAttribute('aria-label')),
            'Revoke Console test key', 'which names the key for a reader');
        await b.focus();
        await page.keyboard.press('Enter');
        await page.waitForSelector('#revoke-dialog[open]', { timeout: WAIT });
        report((await page.$eval('#revoke-dialog', (d) => d.textContent))
            .includes('Console test key'),
            'a confirmation names the key');
        report(await page.evaluate(() =>
            document.getElementById('revoke-dialog')
                .contains(document.activeElement)),
            'and holds the focus');

        await page.keyboard.press('Escape');
        await page.waitForSelector('#revoke-dialog:not([open])',
            { timeout: WAIT });
        is(await status(key), 200, 'Escape declines: the key still works');
        is(await page.evaluate(() =>
            document.activeElement.getAttribute('aria-label')),
            'Revoke Console test key', 'and focus is back on "Revoke"');

        await page.keyboard.press('Enter');
        await page.waitForSelector('#revoke-dialog[open]', { timeout: WAIT });
        await page.keyboard.press('Tab');
        is(await activeId(page), 'revoke-confirm',
            'Tab reaches the confirming "Revoke key"');
        await page.keyboard.press('Enter');
        await page.waitForFunction(() =>
            /Revoked/.test(document.getElementById('message').textContent),
            { timeout: WAIT });
        await listed(page);
        const revoked = await row(page, 'Console test key');
        is(revoked && revoked.state, 'revoked', 'the list shows it revoked');
        report(revoked && !revoked.buttons.includes('Revoke'),
            'with no "Revoke" button any more');
        is(await status(key), 401, 'the key is refused at once: 401');
        await screenshot(page, 'revoked');


        // a name is text, whatever it holds

        const xssKey = await createWithKeyboard(page, XSS_NAME, 0);
        await listed(page);
        const x = await row(page, XSS_NAME);
        report(x, 'a key named like markup is listed under its name, as text');
        is(await page.$eval('#new-key-name', (s) => s.textContent),
            XSS_NAME, 'and named so in the new key\'s panel');
        is(await page.$$eval('img', (l) => l.length), 0,
            'no element was made of it');
        is(await page.evaluate(() => typeof window.__xss), 'undefined',
            'no script of it ran');
        is(x && x.scopes, 'none', 'a key without scopes says "none"');
        await page.click('#new-key-done');


        // rotate: a new key, shown once, and the old one is replaced

        const rotate = await page.evaluateHandle((n) =>
            [...document.querySelectorAll('#keys-body tr')]
            .find((tr) => tr.querySelector('th').textContent === n)
            .querySelector('button.rotate'), XSS_NAME);
        is(await rotate.evaluate((e) => e.textContent), 'Rotate',
            'a key has a "Rotate" button');
        await rotate.asElement().click();
        await page.waitForSelector('#rotate-dialog[open]', { timeout: WAIT });
        await page.select('#rotate-grace', '3600');
        await page.click('#rotate-confirm');
        await page.waitForSelector('#new-key:not([hidden])',
            { timeout: WAIT });
        const rotated = await page.$eval('#new-key-value', (i) => i.value);
        report(rotated !== xssKey && /^ck_/.test(rotated),
            'rotating shows a new key once');
        is(await status(rotated), 200, 'the new key works');
        is(await status(xssKey), 200, 'the old one too, for its grace');
        await page.click('#new-key-done');
        await listed(page);
        report((await page.$$eval('#keys-body tr', (l) => l.map((tr) =>
            tr.textContent))).some((t) => t.includes('Replaced by')),
            'the list says which key was replaced');


        // the API's errors, as a person reads them

        await page.type('#name', 'x'.repeat(1025));
        await page.click('#create-key');
        await page.waitForSelector('#message:not([hidden])',
            { timeout: WAIT });
        const msg = await page.$eval('#message', (m) => ({
            text: m.textContent, role: m.getAttribute('role'),
            cls: m.className,
        }));
        report(/\(HTTP 400, invalid_request\)$/.test(msg.text)
            && msg.text.length > 30 && !msg.text.includes('{'),
            'a refused request shows the API\'s error_description',
            msg.text);
        is(msg.role, 'alert', 'in an alert that screen readers announce');
        await page.$eval('#name', (i) => { i.value = ''; });


        // a phone's screen

        await page.setViewport({ width: 360, height: 740, isMobile: true,
                                 hasTouch: true });
        await page.reload({ waitUntil: 'load', timeout: WAIT });
        await listed(page);
        const narrow = await page.evaluate(() => {
            const vw = document.documentElement.clientWidth;
            const inside = (e) => {
                const r = e.getBoundingClientRect();
                return r.width > 0 && r.left >= 0 && r.right <= vw + 1;
            };
            return {
                scroll: document.documentElement.scrollWidth - vw,
                create: inside(document.getElementById('create-key')),
                name: inside(document.getElementById('name')),
                buttons: [...document.querySelectorAll('#keys-body button')]
                    .every(inside),
                rows: getComputedStyle(
                    document.querySelector('#keys-body tr')).display,
            };
        });
        report(narrow.scroll <= 1, 'on a narrow screen nothing scrolls'
            + ' sideways', JSON.stringify(narrow));
        report(narrow.create && narrow.name,
            '"Name" and "Create key" fit the screen');
        report(narrow.buttons, 'every key\'s buttons fit the screen');
        is(narrow.rows, 'block', 'each key is shown as a card');
        await screenshot(page, 'narrow');

        // a location that does not cap the scopes: they are typed

        await page.setViewport({ width: 1200, height: 900 });
        await page.goto(OPEN_URL, { waitUntil: 'load', timeout: WAIT });
        await listed(page);
        await page.waitForSelector('#scopes-free:not([hidden])',
            { timeout: WAIT });
        is(await page.$$eval('#scopes-choices input', (l) => l.length), 0,
            'without apikey_admin_scopes there is nothing to tick');
        is(await page.$eval('label[for="scopes-text"]',
            (l) => l.textContent), 'Scopes, separated by spaces',
            'but a field to type them in');
        await page.type('#name', 'Typed scopes');
        await page.type('#scopes-text', ' read:people  write:people ');
        await page.click('input[name="expiry"][value="date"]');
        await page.waitForSelector('#expiry-date-field:not([hidden])',
            { timeout: WAIT });
        await page.$eval('#expiry-date', (i) => { i.value = '2030-12-31'; });
        await page.click('#create-key');
        await page.waitForSelector('#new-key:not([hidden])',
            { timeout: WAIT });
        const typed = await page.$eval('#new-key-value', (i) => i.value);
        report(/^ak_/.test(typed), 'the key has the default prefix');
        await page.click('#new-key-done');
        await listed(page);
        const t = await row(page, 'Typed scopes');
        is(t && t.scopes, 'read:people write:people',
            'the key has the scopes typed');
        is(t && t.expiresText, '2030-12-31 00:00 UTC',
            'and expires on the date chosen');
        is(await status(typed), 200, 'and works');

        report(offsite.length === 0, 'nothing is fetched from another'
            + ' origin', offsite.join('\n'));

    } catch (e) {
        report(false, 'the walk through the console ran to the end',
            e.stack);
        if (page) {
            await screenshot(page, 'failed').catch(() => {});
        }
    } finally {
        report(errors.length === 0,
            'no script error, refused inline code or native dialog',
            errors.join('\n'));
        await browser.close();
    }
}


main().catch((e) => {
    report(false, 'the browser started', e.stack);
    process.exitCode = 1;
});
