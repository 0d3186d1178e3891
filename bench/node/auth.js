'use strict';

/*
 * The auth_request peer of the benchmark: a small HTTP service that nginx
 * asks, through auth_request, whether a request's API key is good.  It does
 * the same work per request as the module and the Lua peer: parse the
 * Bearer token, check its shape and checksum, hash it (SHA-256), one HMGET
 * on Redis, check revoked / expiry / scope, and answer 200 with the key's
 * identity in X-ApiKey-* headers (copied by auth_request_set), else 401/403.
 *
 *   node auth.js PORT REDIS_PORT [PREFIX] [SCOPE]
 *
 * Listens on 127.0.0.1 only; exits when stdin closes or after
 * AUTH_MAX_SECONDS (default 3600), so it never outlives the benchmark.
 */

const http = require('node:http');
const crypto = require('node:crypto');
const { createClient } = require('redis');

const port = Number(process.argv[2]);
const redisPort = Number(process.argv[3]);
const prefix = process.argv[4] || 'apikey:';
const required = (process.argv[5] || 'read:people').split(' ');
const maxSeconds = Number(process.env.AUTH_MAX_SECONDS || 3600);

const FIELDS = ['id', 'name', 'org', 'scopes', 'expires_at', 'revoked'];
const TOKEN_RE = /^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)$/;
const BASE62 =
    '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_LEN = 36;
const CHECKSUM_LEN = 6;

const CRC_TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) {
        c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    CRC_TABLE[n] = c;
}

function checksumOk(token) {
    const len = token.length;
    if (len < BODY_LEN + 1 || len > 512) {
        return false;
    }
    let crc = -1;
    for (let i = 0; i < len - CHECKSUM_LEN; i++) {
        crc = CRC_TABLE[(crc ^ token.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
    }
    crc = (crc ^ -1) >>> 0;
    for (let i = len - 1; i >= len - CHECKSUM_LEN; i--) {
        if (token[i] !== BASE62[crc % 62]) {
            return false;
        }
        crc = Math.floor(crc / 62);
    }
    return true;
}

function scopeGranted(want, have) {
    for (const s of have) {
        if (s === want || s === '*'
            || (s.endsWith('*') && want.startsWith(s.slice(0, -1))))
        {
            return true;
        }
    }
    return false;
}

function deny(res, status) {
    res.writeHead(status, { 'Content-Length': '0' });
    res.end();
}

async function main() {
    const redis = createClient({ socket: { host: '127.0.0.1',
                                           port: redisPort } });
    redis.on('error', (err) => console.error('redis:', err.message));
    await redis.connect();

    const server = http.createServer(async (req, res) => {
        const m = TOKEN_RE.exec(req.headers.authorization || '');
        if (m === null) {
            return deny(res, 401);
        }
        const token = m[1];
        if (!checksumOk(token)) {
            return deny(res, 401);
        }

        const hash = crypto.createHash('sha256').update(token).digest('hex');

        let r;
        try {
            r = await redis.hmGet(prefix + hash, FIELDS);
        } catch (err) {
            return deny(res, 503);
        }

        const [id, name, org, scopes, expiresAt, revoked] = r;
        if (!id || revoked === '1') {
            return deny(res, 401);
        }
        const exp = Number(expiresAt || 0);
        if (exp > 0 && exp <= Date.now() / 1000) {
            return deny(res, 401);
        }
        const have = (scopes || '').split(' ');
        for (const want of required) {
            if (!scopeGranted(want, have)) {
                return deny(res, 403);
            }
        }

        res.writeHead(200, {
            'Content-Length': '0',
            'X-ApiKey-Id': id,
            'X-ApiKey-Name': name || '',
            'X-ApiKey-Org': org || '',
            'X-ApiKey-Scopes': scopes || '',
        });
        res.end();
    });

    server.keepAliveTimeout = 60000;
    server.listen(port, '127.0.0.1');

    const stop = () => {
        server.close();
        redis.destroy();
        process.exit(0);
    };
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.resume();
    setTimeout(stop, maxSeconds * 1000).unref();
    process.on('SIGTERM', stop);
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
