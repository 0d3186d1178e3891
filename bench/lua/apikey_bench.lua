-- The OpenResty peer of the benchmark: API-key authentication written the
-- way an OpenResty user would, with Debian's libnginx-mod-http-lua and
-- lua-nginx-redis (the "nginx.redis" module, i.e. lua-resty-redis).
--
-- Per request, like the C module: parse "Authorization: Bearer <token>",
-- check the token's shape and CRC32 checksum, SHA-256 through LuaJIT's FFI
-- to libcrypto (the EVP_MD fetched once, one reused EVP_MD_CTX per worker),
-- one HMGET over a cosocket keepalive pool, revoked / expiry / scope checks,
-- X-ApiKey-* identity headers to the upstream, Authorization removed.
-- access_cached() puts a lua_shared_dict in front of the HMGET with the
-- same ttl and negative_ttl as the module's cache.
--
-- nginx.conf:
--   lua_shared_dict apikey_bench 64m;      (only for access_cached)
--   init_by_lua_block {
--       require("apikey_bench").init{ redis_port = 6379,
--                                     scopes = { "read:people" } }
--   }
--   location / { access_by_lua_block { require("apikey_bench").access() } }

local ffi = require "ffi"
local redis = require "nginx.redis"

local C = ffi.C
local ngx = ngx
local null = ngx.null
local byte = string.byte
local sub = string.sub
local find = string.find
local re_find = ngx.re.find
local crc32 = ngx.crc32_long
local set_header = ngx.req.set_header
local clear_header = ngx.req.clear_header
local ngx_time = ngx.time
local exit = ngx.exit
local tonumber = tonumber

ffi.cdef[[
typedef struct evp_md_st EVP_MD;
typedef struct evp_md_ctx_st EVP_MD_CTX;

EVP_MD *EVP_MD_fetch(void *libctx, const char *algorithm,
    const char *properties);
EVP_MD_CTX *EVP_MD_CTX_new(void);
int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, void *impl);
int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt);
int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md,
    unsigned int *s);

unsigned char *ngx_hex_dump(unsigned char *dst, const unsigned char *src,
    size_t len);
]]

local crypto = ffi.load("libcrypto.so.3")

local _M = {}

local conf = {
    redis_host = "127.0.0.1",
    redis_port = 6379,
    redis_timeout = 200,            -- ms, as apikey_redis_timeout
    pool_size = 32,                 -- as apikey_redis_keepalive
    prefix = "apikey:",
    scopes = { "read:people" },
    dict = "apikey_bench",
    ttl = 60,
    negative_ttl = 10,
}

local md, mdctx
local digest = ffi.new("unsigned char[32]")
local hex = ffi.new("unsigned char[64]")

local BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local BODY_LEN = 36
local CHECKSUM_LEN = 6
local TOKEN_RE = [[^bearer +([A-Za-z0-9\-._~+/]+=*)$]]


function _M.init(opts)
    for k, v in pairs(opts or {}) do
        conf[k] = v
    end
    md = crypto.EVP_MD_fetch(nil, "SHA256", nil)
    if md == nil then
        error("EVP_MD_fetch(SHA256) failed")
    end
end


local function checksum_ok(token)
    local len = #token
    if len < BODY_LEN + 1 or len > 512 then
        return false
    end

    local crc = crc32(sub(token, 1, len - CHECKSUM_LEN))
    for i = len, len - CHECKSUM_LEN + 1, -1 do
        local d = crc % 62
        if byte(token, i) ~= byte(BASE62, d + 1) then
            return false
        end
        crc = (crc - d) / 62
    end

    return true
end


local function hash_key(token)
    if mdctx == nil then
        mdctx = crypto.EVP_MD_CTX_new()
    end
    if crypto.EVP_DigestInit_ex(mdctx, md, nil) ~= 1
       or crypto.EVP_DigestUpdate(mdctx, token, #token) ~= 1
       or crypto.EVP_DigestFinal_ex(mdctx, digest, nil) ~= 1
    then
        return nil
    end
    C.ngx_hex_dump(hex, digest, 32)
    return conf.prefix .. ffi.string(hex, 64)
end


-- scope granted by a key scope that is equal, "*", or "x*" prefixing it
local function granted(want, scopes)
    local pos = 1
    local len = #scopes
    while pos <= len do
        local e = find(scopes, " ", pos, true)
        local last = e and e - 1 or len
        if last >= pos then
            local s = sub(scopes, pos, last)
            if s == want then
                return true
            end
            if byte(s, -1) == 42 then            -- '*'
                local p = sub(s, 1, -2)
                if sub(want, 1, #p) == p then
                    return true
                end
            end
        end
        if e == nil then
            break
        end
        pos = e + 1
    end
    return false
end


local function lookup(key)
    local red = redis:new()
    red:set_timeout(conf.redis_timeout)

    local ok, err = red:connect(conf.redis_host, conf.redis_port)
    if not ok then
        ngx.log(ngx.ERR, "redis connect: ", err)
        return nil, err
    end

    local res
    res, err = red:hmget(key, "id", "name", "org", "scopes", "expires_at",
                         "revoked")
    if not res then
        ngx.log(ngx.ERR, "redis hmget: ", err)
        red:close()
        return nil, err
    end

    red:set_keepalive(60000, conf.pool_size)

    return res
end


local function field(v)
    if v == null then
        return ""
    end
    return v
end


-- replaces what the client sent; an empty value is omitted, as the module does
local function identity(name, value)
    if value == "" then
        clear_header(name)
    else
        set_header(name, value)
    end
end


local function authorize(id, name, org, scopes, expires_at)
    if expires_at > 0 and expires_at <= ngx_time() then
        return exit(401)
    end

    local want = conf.scopes
    for i = 1, #want do
        if not granted(want[i], scopes) then
            return exit(403)
        end
    end

    set_header("X-ApiKey-Id", id)
    identity("X-ApiKey-Name", name)
    identity("X-ApiKey-Org", org)
    identity("X-ApiKey-Scopes", scopes)
    clear_header("Authorization")
end


local function token_of_request()
    local h = ngx.var.http_authorization
    if h == nil then
        return nil, 401
    end

    local from, to = re_find(h, TOKEN_RE, "joi", nil, 1)
    if from == nil then
        return nil, 400
    end

    local token = sub(h, from, to)
    if not checksum_ok(token) then
        return nil, 401
    end

    return token
end


function _M.access()
    local token, status = token_of_request()
    if token == nil then
        return exit(status)
    end

    local key = hash_key(token)
    if key == nil then
        return exit(503)
    end

    local r = lookup(key)
    if r == nil then
        return exit(503)
    end

    local id = field(r[1])
    if id == "" or r[6] == "1" then
        return exit(401)
    end

    return authorize(id, field(r[2]), field(r[3]), field(r[4]),
                     tonumber(field(r[5])) or 0)
end


-- Cache entry: "id\nname\norg\nscopes" with expires_at in the flags,
-- or "" for an unknown or revoked key.
function _M.access_cached()
    local token, status = token_of_request()
    if token == nil then
        return exit(status)
    end

    local key = hash_key(token)
    if key == nil then
        return exit(503)
    end

    local dict = ngx.shared[conf.dict]
    local v, expires_at = dict:get(key)

    if v == nil then
        local r = lookup(key)
        if r == nil then
            return exit(503)
        end

        local id = field(r[1])
        if id == "" then
            dict:set(key, "", conf.negative_ttl)
            return exit(401)
        end
        if r[6] == "1" then
            dict:set(key, "", conf.ttl)
            return exit(401)
        end

        local name, org, scopes = field(r[2]), field(r[3]), field(r[4])
        expires_at = tonumber(field(r[5])) or 0
        dict:set(key, id .. "\n" .. name .. "\n" .. org .. "\n" .. scopes,
                 conf.ttl, expires_at)

        return authorize(id, name, org, scopes, expires_at)
    end

    if v == "" then
        return exit(401)
    end

    local a = find(v, "\n", 1, true)
    local b = find(v, "\n", a + 1, true)
    local c = find(v, "\n", b + 1, true)

    return authorize(sub(v, 1, a - 1), sub(v, a + 1, b - 1),
                     sub(v, b + 1, c - 1), sub(v, c + 1), expires_at or 0)
end


return _M
