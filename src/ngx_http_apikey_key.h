
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The key format and the token hash, shared by the nginx module and the
 * apikey command-line tool.  This file pair includes no nginx header.
 *
 * A key is <prefix><30 base62 random characters><6 base62 characters>,
 * the last six being CRC32 of everything before them, most significant
 * digit first, alphabet 0-9A-Za-z, zero-padded.
 */


#ifndef _NGX_HTTP_APIKEY_KEY_H_INCLUDED_
#define _NGX_HTTP_APIKEY_KEY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>


#define NGX_HTTP_APIKEY_KEY_RANDOM_LEN     30
#define NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN   6
#define NGX_HTTP_APIKEY_KEY_BODY_LEN                                         \
    (NGX_HTTP_APIKEY_KEY_RANDOM_LEN + NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN)
#define NGX_HTTP_APIKEY_KEY_PREFIX_MAX     16
#define NGX_HTTP_APIKEY_KEY_MAX_LEN                                          \
    (NGX_HTTP_APIKEY_KEY_PREFIX_MAX + NGX_HTTP_APIKEY_KEY_BODY_LEN)
#define NGX_HTTP_APIKEY_KEY_DEFAULT_PREFIX "ak_"

/* where records live by default: P<hash> with this P (redis-schema.md) */
#define NGX_HTTP_APIKEY_KEY_REDIS_PREFIX   "apikey:"
#define NGX_HTTP_APIKEY_KEY_HINT_LEN       4

/* a SHA-256 digest or HMAC-SHA256, and its lowercase hex */
#define NGX_HTTP_APIKEY_HASH_LEN           32
#define NGX_HTTP_APIKEY_HASH_HEX_LEN       64


/*
 * A prefix is 1 to 16 characters of [A-Za-z0-9_] ending in '_'.
 * Returns 1 if valid, 0 otherwise.
 */
int ngx_http_apikey_key_prefix_valid(const unsigned char *p, size_t len);

/*
 * Writes a new key (not NUL-terminated) into out, which must hold
 * len(prefix) + NGX_HTTP_APIKEY_KEY_BODY_LEN bytes; randomness comes from
 * RAND_bytes() without modulo bias.  Returns the key's length, or 0 if the
 * prefix is invalid or RAND_bytes() failed.
 */
size_t ngx_http_apikey_key_generate(const unsigned char *prefix,
    size_t prefix_len, unsigned char *out);

/*
 * Writes n random base62 characters into out (no NUL), without modulo bias.
 * Returns 0 on success, -1 if RAND_bytes() failed.
 */
int ngx_http_apikey_key_random(unsigned char *out, size_t n);

/*
 * Checks the shape and checksum of a key: at least BODY_LEN + 1 bytes,
 * the prefix part (everything before the last BODY_LEN bytes) valid, the
 * body base62, and the checksum right.  Returns 1 if valid, 0 otherwise.
 * Never reads beyond len, never logs.
 */
int ngx_http_apikey_key_check(const unsigned char *key, size_t len);

/*
 * CRC-32/IEEE (as zlib's crc32()) of p; CRC32("123456789") = 0xcbf43926.
 */
uint32_t ngx_http_apikey_key_crc32(const unsigned char *p, size_t len);

/*
 * Writes n as NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN base62 digits into out,
 * most significant first, zero-padded (no NUL).
 */
void ngx_http_apikey_key_base62(uint32_t n, unsigned char *out);

/*
 * Hex SHA-256 of the token, or hex HMAC-SHA256 keyed with secret when
 * secret_len > 0.  md is a SHA-256 EVP_MD (fetched once by the caller).
 * Writes exactly NGX_HTTP_APIKEY_HASH_HEX_LEN bytes into hex (no NUL).
 * Returns 0 on success, -1 on an OpenSSL failure.
 */
int ngx_http_apikey_key_hash(const EVP_MD *md, const unsigned char *secret,
    size_t secret_len, const unsigned char *token, size_t len,
    unsigned char *hex);


/* writes NGX_HTTP_APIKEY_HASH_HEX_LEN bytes */
void ngx_http_apikey_key_hex(const unsigned char *digest, unsigned char *hex);

/*
 * The same hash, binary, with the OpenSSL objects made once: a long-lived
 * process (an nginx worker) keeps one hasher per secret; fetching and
 * allocating on every token costs ten times the digest itself.  NULL on
 * failure.
 */

typedef struct ngx_http_apikey_hasher_s  ngx_http_apikey_hasher_t;

ngx_http_apikey_hasher_t *ngx_http_apikey_hasher_create(
    const unsigned char *secret, size_t secret_len);
int ngx_http_apikey_hasher_digest(ngx_http_apikey_hasher_t *h,
    const unsigned char *token, size_t len, unsigned char *digest);
void ngx_http_apikey_hasher_free(ngx_http_apikey_hasher_t *h);


#endif /* _NGX_HTTP_APIKEY_KEY_H_INCLUDED_ */
