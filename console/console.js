/*
 * The API keys console: a page over the module's admin API (apikey_admin
 * on; docs/directives.md).  Plain JavaScript, no build step, nothing fetched
 * but that API.
 *
 * Every value from the API reaches the page as text (textContent, value,
 * setAttribute), never as markup: a key's name is whatever its creator
 * typed.  A new key lives in the page only while its panel is open.
 */

(function () {
    'use strict';

    var api = adminApi();
    var lastFocus = null;       /* where focus returns after a panel */

    var $ = function (id) { return document.getElementById(id); };

    var EXPIRY_DAYS = { '30': 30, '90': 90, never: 0 };


    /* The API's base URL: <meta name="apikey-admin-api">, relative to this
     * page, "../keys/" by default. */
    function adminApi() {
        var meta = document.querySelector('meta[name="apikey-admin-api"]');
        var base = (meta && meta.content) || '../keys/';

        if (base.charAt(base.length - 1) !== '/') {
            base += '/';
        }

        return new URL(base, document.baseURI).href;
    }


    /* A request to the admin API; resolves with the decoded body, rejects
     * with an Error whose message a person can read. */
    function request(method, path, body) {
        var opts = {
            method: method,
            headers: { Accept: 'application/json' },
            credentials: 'same-origin',
            cache: 'no-store',
            /* a sign-in page in place of the API is an answer to show */
            redirect: 'manual'
        };

        if (body !== undefined) {
            opts.headers['Content-Type'] = 'application/json';
            opts.body = JSON.stringify(body);
        }

        return fetch(api + path, opts).then(function (res) {
            if (res.type === 'opaqueredirect') {
                throw new Error('The admin API sent this page elsewhere:'
                                + ' your session may have ended. Reload'
                                + ' the page to sign in again.');
            }

            return res.text().then(function (text) {
                var data = null;
                var json = true;

                try {
                    data = text === '' ? null : JSON.parse(text);
                } catch (e) {
                    json = false;
                }

                if (!res.ok) {
                    throw apiError(res, data);
                }

                /* a page in place of the API: the meta tag points wrong,
                 * or the location is not "apikey_admin on" */
                if (!json) {
                    throw new Error('The answer from ' + api + ' is not the'
                                    + ' admin API\'s (HTTP ' + res.status
                                    + ', not JSON).');
                }

                return data;
            });

        }, function () {
            throw new Error('The admin API at ' + api + ' cannot be reached.'
                            + ' Check the connection and try again.');
        });
    }


    function apiError(res, data) {
        var text;

        if (data && typeof data.error_description === 'string'
            && data.error_description !== '')
        {
            text = data.error_description;

        } else if (res.status === 401) {
            text = 'You are not signed in to the admin API.';

        } else if (res.status === 403) {
            text = 'You may not manage keys here.';

        } else if (res.status === 404) {
            text = 'No such key (it may have been removed).';

        } else if (res.status >= 500) {
            text = 'The admin API is unavailable; try again shortly.';

        } else {
            text = 'The admin API refused the request.';
        }

        text += ' (HTTP ' + res.status
                + (data && typeof data.error === 'string'
                   ? ', ' + data.error : '')
                + ')';

        return new Error(text);
    }


    /* Messages: one alert region at the top of the page. */

    function showError(err) {
        var box = $('message');

        box.textContent = err && err.message ? err.message : String(err);
        box.className = 'message error';
        box.hidden = false;
    }


    function showNotice(text) {
        var box = $('message');

        box.textContent = text;
        box.className = 'message notice';
        box.hidden = false;
    }


    function clearMessage() {
        var box = $('message');

        box.hidden = true;
        box.textContent = '';
    }


    /* el('td', { class: 'x' }, 'text', node, ...): an element; strings
     * become text nodes. */
    function el(tag, attrs) {
        var node = document.createElement(tag);
        var name, i, child;

        for (name in attrs || {}) {
            if (Object.prototype.hasOwnProperty.call(attrs, name)) {
                node.setAttribute(name, attrs[name]);
            }
        }

        for (i = 2; i < arguments.length; i++) {
            child = arguments[i];

            if (child === null || child === undefined) {
                continue;
            }

            node.appendChild(typeof child === 'string'
                             ? document.createTextNode(child) : child);
        }

        return node;
    }


    /* "2026-11-29 22:53 UTC" in a <time>, or the word for null */
    function when(iso, none) {
        var d, text;

        if (iso === null || iso === undefined || iso === '') {
            return el('span', { 'class': 'none' }, none);
        }

        d = new Date(iso);

        if (isNaN(d.getTime())) {
            return el('span', null, String(iso));
        }

        text = d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';

        return el('time', { datetime: String(iso) }, text);
    }


    /* The scopes that may be granted: checkboxes, or a text field when the
     * location does not cap them (scopes: null). */

    function loadScopes() {
        return request('GET', 'scopes').then(function (data) {
            var scopes = data && Array.isArray(data.scopes) ? data.scopes
                                                            : null;
            var box = $('scopes-choices');

            $('scopes-loading').hidden = true;
            box.textContent = '';

            if (scopes === null) {
                $('scopes-free').hidden = false;
                return;
            }

            $('scopes-free').hidden = true;

            if (scopes.length === 0) {
                box.appendChild(el('p', { 'class': 'hint' },
                    'No scopes may be granted here: keys are made without'
                    + ' scopes.'));
                return;
            }

            scopes.forEach(function (scope, i) {
                var input = el('input', {
                    type: 'checkbox', name: 'scope', id: 'scope-' + i
                });

                input.value = String(scope);
                box.appendChild(el('label', { 'for': 'scope-' + i },
                                   input, ' ', el('code', null,
                                                  String(scope))));
            });

        }, function (err) {
            $('scopes-loading').textContent =
                'The scopes could not be loaded: ' + err.message;
            $('scopes-free').hidden = false;
        });
    }


    function chosenScopes() {
        var boxes, text;

        if (!$('scopes-free').hidden) {
            text = $('scopes-text').value.trim();
            return text === '' ? [] : text.split(/\s+/);
        }

        boxes = document.querySelectorAll('#scopes-choices input:checked');

        return Array.prototype.map.call(boxes, function (b) {
            return b.value;
        });
    }


    /* The list */

    function loadKeys() {
        var state = $('state-filter').value;
        var status = $('keys-status');

        status.textContent = 'Loading keys…';

        return request('GET', state ? '?state=' + encodeURIComponent(state)
                                    : '')
            .then(function (keys) {
                renderKeys(Array.isArray(keys) ? keys : []);

            }, function (err) {
                status.textContent = 'The keys could not be loaded.';
                showError(err);
            });
    }


    function renderKeys(keys) {
        var body = $('keys-body');
        var status = $('keys-status');

        keys.sort(function (a, b) {
            return String(b.created_at || '')
                   .localeCompare(String(a.created_at || ''));
        });

        body.textContent = '';

        keys.forEach(function (k) {
            body.appendChild(keyRow(k));
        });

        $('keys-table').hidden = keys.length === 0;
        status.textContent = keys.length === 0 ? 'No keys.'
                             : keys.length === 1 ? '1 key.'
                             : keys.length + ' keys.';
    }


    function keyRow(k) {
        var state = ['active', 'expired', 'revoked'].indexOf(k.state) >= 0
                    ? k.state : 'unknown';
        var scopes = Array.isArray(k.scopes) ? k.scopes : [];
        var actions = el('td', { 'data-label': 'Actions',
                                 'class': 'actions' });
        var scopeCell = el('td', { 'data-label': 'Scopes' });
        var name = String(k.name === null || k.name === undefined ? ''
                                                                  : k.name);
        var hint = '…' + String(k.hint || '');
        var row;

        if (scopes.length === 0) {
            scopeCell.appendChild(el('span', { 'class': 'none' }, 'none'));
        }

        scopes.forEach(function (s) {
            scopeCell.appendChild(el('code', { 'class': 'scope' },
                                     String(s)));
            scopeCell.appendChild(document.createTextNode(' '));
        });

        row = el('tr', { 'data-id': String(k.id) },
            el('th', { scope: 'row', 'data-label': 'Name',
                       'class': 'name' }, name),
            el('td', { 'data-label': 'Key' }, el('code', null, hint)),
            el('td', { 'data-label': 'Org' },
               k.org === null || k.org === undefined
               ? el('span', { 'class': 'none' }, '—') : String(k.org)),
            scopeCell,
            el('td', { 'data-label': 'Created' }, when(k.created_at, '—')),
            el('td', { 'data-label': 'Expires' }, when(k.expires_at,
                                                       'never')),
            el('td', { 'data-label': 'Last used' },
               when(k.last_used_at, 'never')),
            el('td', { 'data-label': 'State' },
               el('span', { 'class': 'state state-' + state },
                  state === 'unknown' ? String(k.state) : state)),
            actions);

        /* as the apikey tool: only an active key that was not rotated yet
         * can be rotated, and any key not revoked yet revoked */
        if (state === 'active' && !k.replaced_by) {
            actions.appendChild(actionButton('Rotate', name, function (b) {
                confirmRotate(k, name, hint, b);
            }));
        }

        if (state !== 'revoked') {
            actions.appendChild(actionButton('Revoke', name, function (b) {
                confirmRevoke(k, name, hint, b);
            }));
        }

        if (k.replaced_by) {
            actions.appendChild(el('span', { 'class': 'hint' },
                                   'Replaced by ' + String(k.replaced_by)));
        }

        return row;
    }


    /* A row's button: its visible word, and the key's name for screen
     * readers ("Revoke Nightly export"). */
    function actionButton(word, name, onclick) {
        var b = el('button', { type: 'button', 'class': word.toLowerCase(),
                               'aria-label': word + ' ' + name }, word);

        b.addEventListener('click', function () { onclick(b); });

        return b;
    }


    /* Create */

    function createKey(ev) {
        var form = $('create-form');
        var name = $('name').value;
        var expiry = form.querySelector('input[name="expiry"]:checked').value;
        var body, date;

        ev.preventDefault();
        clearMessage();

        if (name.trim() === '') {
            showError(new Error('Give the key a name: what it is for.'));
            $('name').focus();
            return;
        }

        body = { name: name, scopes: chosenScopes() };

        if (expiry === 'date') {
            date = $('expiry-date').value;

            if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) {
                showError(new Error('Choose the expiry date.'));
                $('expiry-date').focus();
                return;
            }

            body.expires_at = date + 'T00:00:00Z';

        } else {
            body.expires_in_days = EXPIRY_DAYS[expiry];
        }

        $('create-key').disabled = true;

        request('POST', '', body).then(function (k) {
            form.reset();
            syncExpiry();
            showNewKey(k, $('create-key'));
            return loadKeys();

        }, showError).then(function () {
            $('create-key').disabled = false;
        });
    }


    /* The one-time panel: the key is in the page only while it is open */

    function showNewKey(k, returnTo) {
        var panel = $('new-key');

        lastFocus = returnTo;
        $('new-key-name').textContent = String(k.name);
        $('new-key-value').value = String(k.key);
        $('copy-status').textContent = '';
        panel.hidden = false;
        panel.focus();
    }


    function closeNewKey() {
        $('new-key-value').value = '';
        $('new-key-name').textContent = '';
        $('copy-status').textContent = '';
        $('new-key').hidden = true;

        if (lastFocus && document.body.contains(lastFocus)) {
            lastFocus.focus();
        } else {
            $('keys-title').focus();
        }

        lastFocus = null;
    }


    function copyKey() {
        var input = $('new-key-value');
        var status = $('copy-status');
        var fallback = function () {
            input.focus();
            input.select();

            try {
                status.textContent = document.execCommand('copy')
                    ? 'Copied.' : 'Select the key and copy it by hand.';
            } catch (e) {
                status.textContent = 'Select the key and copy it by hand.';
            }
        };

        if (navigator.clipboard && window.isSecureContext) {
            navigator.clipboard.writeText(input.value).then(function () {
                status.textContent = 'Copied.';
            }, fallback);

        } else {
            fallback();
        }
    }


    /* Revoke and rotate: each asks first, in a modal dialog that keeps the
     * keyboard inside it and gives focus back where it was. */

    /* what the open dialog was opened for: one question at a time */
    var asking = {};

    function ask(dialog, returnTo, onconfirm) {
        if (!(dialog.id in asking)) {
            dialog.addEventListener('close', function () {
                var q = asking[dialog.id];

                /*
                 * "close" is a task of its own: after an Escape, a quick
                 * Enter may open the dialog again before it comes, and then
                 * it is not the answer to this question
                 */
                if (dialog.open || q === null) {
                    return;
                }

                asking[dialog.id] = null;

                if (dialog.returnValue === 'confirm') {
                    q.onconfirm();
                } else if (document.body.contains(q.returnTo)) {
                    q.returnTo.focus();
                }
            });
        }

        asking[dialog.id] = { returnTo: returnTo, onconfirm: onconfirm };
        dialog.returnValue = '';
        dialog.showModal();
    }


    function confirmRevoke(k, name, hint, button) {
        $('revoke-name').textContent = name;
        $('revoke-hint').textContent = hint;

        ask($('revoke-dialog'), button, function () {
            clearMessage();

            request('DELETE', encodeURIComponent(k.id)).then(function () {
                showNotice('Revoked "' + name + '": its next request is'
                           + ' refused.');
                return loadKeys();

            }, showError).then(function () {
                $('keys-title').focus();
            });
        });
    }


    function confirmRotate(k, name, hint, button) {
        $('rotate-name').textContent = name;
        $('rotate-hint').textContent = hint;

        ask($('rotate-dialog'), button, function () {
            var grace = parseInt($('rotate-grace').value, 10) || 0;

            clearMessage();

            request('POST', encodeURIComponent(k.id) + '/rotate',
                    { grace_seconds: grace })
                .then(function (nk) {
                    showNewKey(nk, null);
                    return loadKeys();

                }, function (err) {
                    showError(err);
                    $('keys-title').focus();
                });
        });
    }


    function syncExpiry() {
        var form = $('create-form');
        var v = form.querySelector('input[name="expiry"]:checked').value;

        $('expiry-date-field').hidden = v !== 'date';
    }


    function start() {
        $('keys-title').setAttribute('tabindex', '-1');

        $('create-form').addEventListener('submit', createKey);
        $('create-form').addEventListener('change', syncExpiry);
        $('copy-key').addEventListener('click', copyKey);
        $('new-key-done').addEventListener('click', closeNewKey);
        $('state-filter').addEventListener('change', loadKeys);
        $('refresh').addEventListener('click', function () {
            clearMessage();
            loadKeys();
        });

        /* a browser's form restore must not bring a key back */
        $('new-key-value').value = '';

        /* an expiry in the past is refused: offer tomorrow on */
        $('expiry-date').min = new Date(Date.now() + 86400000)
                               .toISOString().slice(0, 10);

        syncExpiry();
        loadScopes();
        loadKeys();
    }


    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', start);
    } else {
        start();
    }
}());
