
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The key format: base62, CRC32, generate/check, prefix rules, the hash.
 */


#include <stdlib.h>

#include <openssl/evp.h>

#include "ngx_http_apikey_key.h"
#include "apikey_unit.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1


static void ngx_http_apikey_unit_base62(void);
static void ngx_http_apikey_unit_crc32(void);
static void ngx_http_apikey_unit_prefix(void);
static void ngx_http_apikey_unit_generate(void);
static void ngx_http_apikey_unit_check(void);
static void ngx_http_apikey_unit_mutations(const unsigned char *key,
    size_t len);
static void ngx_http_apikey_unit_hash(void);
static const char *ngx_http_apikey_unit_hex(const EVP_MD *md,
    const char *secret, const char *token);


void
ngx_http_apikey_unit_key(void)
{
    ngx_http_apikey_unit_base62();
    ngx_http_apikey_unit_crc32();
    ngx_http_apikey_unit_prefix();
    ngx_http_apikey_unit_generate();
    ngx_http_apikey_unit_check();
    ngx_http_apikey_unit_hash();
}


static void
ngx_http_apikey_unit_base62(void)
{
    size_t         i;
    unsigned char  out[NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN + 1];

    static const struct {
        uint32_t     n;
        const char  *s;
    } vectors[] = {
        { 0, "000000" },
        { 9, "000009" },
        { 10, "00000A" },
        { 35, "00000Z" },
        { 36, "00000a" },
        { 61, "00000z" },
        { 62, "000010" },
        { 3843, "0000zz" },
        { 0xcbf43926, "3jZRME" },
        { 0xffffffff, "4gfFC3" }
    };

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        memset(out, 0, sizeof(out));
        ngx_http_apikey_key_base62(vectors[i].n, out);
        ngx_http_apikey_unit_is_str((char *) out, vectors[i].s,
                                    "base62 digits, most significant first");
    }
}


static void
ngx_http_apikey_unit_crc32(void)
{
    ngx_http_apikey_unit_is_int(ngx_http_apikey_key_crc32(S("")), 0,
                                "CRC32 of nothing is 0");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_key_crc32(S("123456789")),
                                0xcbf43926, "CRC32(\"123456789\")");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_key_crc32(S("a")),
                                0xe8b7be43, "CRC32(\"a\")");
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_key_crc32(
            S("The quick brown fox jumps over the lazy dog")),
        0x414fa339, "CRC32 of the quick brown fox");
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_key_crc32(S("ak_0123456789ABCDEFGHIJKLMNOPQRST")),
        0xde52e0fb, "CRC32 of a key body (as Python's zlib.crc32)");
}


static void
ngx_http_apikey_unit_prefix(void)
{
    ngx_http_apikey_unit_ok(ngx_http_apikey_key_prefix_valid(S("ak_")),
                            "ak_ is a valid prefix");
    ngx_http_apikey_unit_ok(ngx_http_apikey_key_prefix_valid(S("gai_")),
                            "gai_ is a valid prefix");
    ngx_http_apikey_unit_ok(ngx_http_apikey_key_prefix_valid(S("_")),
                            "a lone underscore is a valid prefix");
    ngx_http_apikey_unit_ok(ngx_http_apikey_key_prefix_valid(S("My_Key9_")),
                            "letters, digits, underscores");
    ngx_http_apikey_unit_ok(
        ngx_http_apikey_key_prefix_valid(S("abcdefghijklmno_")),
        "16 characters is the maximum");
    ngx_http_apikey_unit_ok(
        !ngx_http_apikey_key_prefix_valid(S("abcdefghijklmnop_")),
        "17 characters is too long");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_key_prefix_valid(S("")),
                            "an empty prefix is invalid");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_key_prefix_valid(S("ak")),
                            "a prefix must end in an underscore");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_key_prefix_valid(S("a-k_")),
                            "a dash is not allowed in a prefix");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_key_prefix_valid(S("a k_")),
                            "a space is not allowed in a prefix");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_key_prefix_valid(S("\xc3\xa9_")),
                            "non-ASCII is not allowed in a prefix");
}


static void
ngx_http_apikey_unit_generate(void)
{
    int            i, j, seen[256], all;
    size_t         len;
    unsigned char  key[NGX_HTTP_APIKEY_KEY_MAX_LEN], other[sizeof(key)];

    len = ngx_http_apikey_key_generate(S("ak_"), key);
    ngx_http_apikey_unit_is_int(len, 3 + NGX_HTTP_APIKEY_KEY_BODY_LEN,
                                "a default-prefix key is 39 characters");
    ngx_http_apikey_unit_ok(memcmp(key, "ak_", 3) == 0,
                            "a generated key starts with its prefix");
    ngx_http_apikey_unit_ok(ngx_http_apikey_key_check(key, len),
                            "a generated key passes the check");

    ngx_http_apikey_unit_is_int(ngx_http_apikey_key_generate(S("bad-"), key),
                                0, "generate refuses an invalid prefix");

    len = ngx_http_apikey_key_generate(S("abcdefghijklmno_"), key);
    ngx_http_apikey_unit_is_int(len, NGX_HTTP_APIKEY_KEY_MAX_LEN,
                                "a 16-character prefix makes a 52-byte key");
    ngx_http_apikey_unit_ok(ngx_http_apikey_key_check(key, len),
                            "a longest key passes the check");

    len = ngx_http_apikey_key_generate(S("_"), key);
    ngx_http_apikey_unit_ok(len != 0 && ngx_http_apikey_key_check(key, len),
                            "a key with the shortest prefix passes the check");

    ngx_http_apikey_key_generate(S("ak_"), key);
    ngx_http_apikey_key_generate(S("ak_"), other);
    ngx_http_apikey_unit_ok(memcmp(key, other, 3 + 30) != 0,
                            "two generated keys differ");

    /* over 2000 keys every alphabet character shows up in the random part */

    memset(seen, 0, sizeof(seen));

    for (i = 0; i < 2000; i++) {
        len = ngx_http_apikey_key_generate(S("ak_"), key);

        if (len == 0 || !ngx_http_apikey_key_check(key, len)) {
            break;
        }

        for (j = 3; j < 3 + NGX_HTTP_APIKEY_KEY_RANDOM_LEN; j++) {
            seen[key[j]]++;
        }
    }

    ngx_http_apikey_unit_is_int(i, 2000, "2000 generated keys all pass");

    all = 1;

    for (j = 0; j < 256; j++) {
        if (((j >= '0' && j <= '9') || (j >= 'A' && j <= 'Z')
             || (j >= 'a' && j <= 'z'))
            != (seen[j] != 0))
        {
            all = 0;
        }
    }

    ngx_http_apikey_unit_ok(all, "the random part uses exactly 0-9A-Za-z");

    /* 60000 characters, 62 symbols: each expected ~968, sigma ~31 */

    all = 1;

    for (j = 0; j < 256; j++) {
        if (seen[j] != 0 && (seen[j] < 968 - 250 || seen[j] > 968 + 250)) {
            all = 0;
        }
    }

    ngx_http_apikey_unit_ok(all, "the random characters are evenly spread");
}


static void
ngx_http_apikey_unit_check(void)
{
    size_t         len;
    unsigned char  key[NGX_HTTP_APIKEY_KEY_MAX_LEN + 2];

    ngx_http_apikey_unit_ok(
        ngx_http_apikey_key_check(S("ak_0123456789ABCDEFGHIJKLMNOPQRST44QaUt")),
        "a known key passes");
    ngx_http_apikey_unit_ok(
        ngx_http_apikey_key_check(
            S("gai_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1qGakR")),
        "a known key with another prefix passes");
    ngx_http_apikey_unit_ok(
        !ngx_http_apikey_key_check(
            S("ak_0123456789ABCDEFGHIJKLMNOPQRST44QaUu")),
        "a wrong checksum is rejected");
    ngx_http_apikey_unit_ok(
        !ngx_http_apikey_key_check(
            S("ak_0123456789ABCDEFGHIJKLMNOPQRST44qaUt")),
        "the checksum is case-sensitive");
    ngx_http_apikey_unit_ok(
        !ngx_http_apikey_key_check(S("0123456789ABCDEFGHIJKLMNOPQRST44QaUt")),
        "a key without a prefix is rejected");
    ngx_http_apikey_unit_ok(
        !ngx_http_apikey_key_check(
            S("ak_0123456789ABCDEFGHIJKLMNOPQRS44QaUt")),
        "a key one character short is rejected");
    ngx_http_apikey_unit_ok(
        !ngx_http_apikey_key_check(
            S("ak_0123456789ABCDEFGHIJKLMNOPQRST44QaUtx")),
        "a key with a character appended is rejected");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_key_check(S("")),
                            "an empty key is rejected");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_key_check(S("ak_")),
                            "a lone prefix is rejected");
    ngx_http_apikey_unit_ok(!ngx_http_apikey_key_check(S("secret-token")),
                            "an arbitrary token is rejected");
    ngx_http_apikey_unit_ok(
        !ngx_http_apikey_key_check(
            S("abcdefghijklmnopq_0123456789ABCDEFGHIJKLMNOPQRST44QaUt")),
        "a key longer than the maximum is rejected");

    ngx_http_apikey_unit_mutations(
        S("ak_0123456789ABCDEFGHIJKLMNOPQRST44QaUt"));

    len = ngx_http_apikey_key_generate(S("abcdefghijklmno_"), key);
    ngx_http_apikey_unit_mutations(key, len);

    len = ngx_http_apikey_key_generate(S("ck_"), key);
    ngx_http_apikey_unit_mutations(key, len);
}


static void
ngx_http_apikey_unit_mutations(const unsigned char *key, size_t len)
{
    int            c, accepted;
    size_t         i;
    unsigned char  buf[NGX_HTTP_APIKEY_KEY_MAX_LEN];

    ngx_http_apikey_unit_ok(ngx_http_apikey_key_check(key, len),
                            "the unmutated key passes");

    accepted = 0;

    for (i = 0; i < len; i++) {
        for (c = 0; c < 256; c++) {
            if (c == key[i]) {
                continue;
            }

            memcpy(buf, key, len);
            buf[i] = (unsigned char) c;

            if (ngx_http_apikey_key_check(buf, len)) {
                accepted++;
            }
        }
    }

    ngx_http_apikey_unit_is_int(accepted, 0,
                                "every single-byte mutation is rejected");

    /* swapping two adjacent different characters */

    accepted = 0;

    for (i = 0; i + 1 < len; i++) {
        if (key[i] == key[i + 1]) {
            continue;
        }

        memcpy(buf, key, len);
        buf[i] = key[i + 1];
        buf[i + 1] = key[i];

        if (ngx_http_apikey_key_check(buf, len)) {
            accepted++;
        }
    }

    ngx_http_apikey_unit_is_int(accepted, 0,
                                "every adjacent transposition is rejected");
}


static void
ngx_http_apikey_unit_hash(void)
{
    EVP_MD  *md;

    md = EVP_MD_fetch(NULL, "SHA256", NULL);

    if (!ngx_http_apikey_unit_ok(md != NULL, "SHA256 is available")) {
        return;
    }

    /* printf %s abc | sha256sum */
    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_hex(md, NULL, "abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "SHA-256(\"abc\")");

    /* printf %s ak_test | sha256sum */
    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_hex(md, NULL, "ak_test"),
        "5364b0ab6b28e44634f8657a9ae296865937601d03a55585138ab0afa9a8b790",
        "SHA-256(\"ak_test\")");

    ngx_http_apikey_unit_is_str(ngx_http_apikey_unit_hex(md, NULL, ""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "SHA-256 of the empty string");

    /* RFC 4231, test case 2 */
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_hex(md, "Jefe", "what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "HMAC-SHA256, RFC 4231 test case 2");

    /* printf %s ak_test | openssl dgst -sha256 -hmac s3cret */
    ngx_http_apikey_unit_is_str(
        ngx_http_apikey_unit_hex(md, "s3cret", "ak_test"),
        "a531d45313ceba903d8dff2ed6bb7978f58e30d0a8255ee1cc858be35d3d86db",
        "HMAC-SHA256 of a token");

    EVP_MD_free(md);
}


static const char *
ngx_http_apikey_unit_hex(const EVP_MD *md, const char *secret,
    const char *token)
{
    static char  hex[NGX_HTTP_APIKEY_HASH_HEX_LEN + 1];

    memset(hex, 0, sizeof(hex));

    if (ngx_http_apikey_key_hash(md, (const unsigned char *) secret,
                                 secret ? strlen(secret) : 0,
                                 (const unsigned char *) token, strlen(token),
                                 (unsigned char *) hex)
        != 0)
    {
        return "(hash failed)";
    }

    return hex;
}
