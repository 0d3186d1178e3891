
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * libFuzzer target: the key format (src/ngx_http_apikey_key.c, no nginx
 * header), checked against independent implementations: CRC-32 bit by
 * bit, base62 by division, the whole format by its definition in
 * ngx_http_apikey_key.h, and the hashers against OpenSSL's one-shot
 * SHA-256 and HMAC.
 *
 * Input: one byte of options (bit 0: hash with an HMAC secret made of the
 * first (byte >> 1) % 32 + 1 bytes of the rest), then the key.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_apikey_key.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char  ngx_http_apikey_fuzz_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";


static uint32_t
ngx_http_apikey_fuzz_crc32(const unsigned char *p, size_t len)
{
    int       k;
    size_t    i;
    uint32_t  crc;

    crc = 0xffffffff;

    for (i = 0; i < len; i++) {
        crc ^= p[i];

        for (k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320 & (0 - (crc & 1)));
        }
    }

    return ~crc;
}


static int
ngx_http_apikey_fuzz_check(const unsigned char *key, size_t len)
{
    size_t         i, plen;
    uint32_t       crc;
    unsigned char  sum[6];

    if (len <= 36 || len > 52) {
        return 0;
    }

    plen = len - 36;

    if (key[plen - 1] != '_') {
        return 0;
    }

    for (i = 0; i < plen; i++) {
        if (!(key[i] == '_' || (key[i] >= '0' && key[i] <= '9')
              || (key[i] >= 'A' && key[i] <= 'Z')
              || (key[i] >= 'a' && key[i] <= 'z')))
        {
            return 0;
        }
    }

    for (i = plen; i < len; i++) {
        if (strchr(ngx_http_apikey_fuzz_alphabet, key[i]) == NULL
            || key[i] == '\0')
        {
            return 0;
        }
    }

    crc = ngx_http_apikey_fuzz_crc32(key, len - 6);

    for (i = 6; i > 0; i--) {
        sum[i - 1] = ngx_http_apikey_fuzz_alphabet[crc % 62];
        crc /= 62;
    }

    return memcmp(sum, key + len - 6, 6) == 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                     slen;
    uint32_t                   crc;
    unsigned int               n;
    unsigned char             *key, sum[6], fixed[64];
    unsigned char              got[EVP_MAX_MD_SIZE], want[EVP_MAX_MD_SIZE];
    const unsigned char       *secret;
    ngx_http_apikey_hasher_t  *h;

    if (size == 0) {
        return 0;
    }

    secret = NULL;
    slen = 0;

    if (data[0] & 1) {
        slen = (data[0] >> 1) % 32 + 1;
        if (slen > size - 1) {
            slen = size - 1;
        }

        secret = data + 1;
    }

    data++;
    size--;

    key = malloc(size ? size : 1);
    if (key == NULL) {
        return 0;
    }

    memcpy(key, data, size);

    if (ngx_http_apikey_key_check(key, size)
        != ngx_http_apikey_fuzz_check(key, size))
    {
        abort();
    }

    crc = ngx_http_apikey_key_crc32(key, size);

    if (crc != ngx_http_apikey_fuzz_crc32(key, size)) {
        abort();
    }

    ngx_http_apikey_key_base62(crc, sum);

    for (n = 0; n < 6; n++) {
        if (strchr(ngx_http_apikey_fuzz_alphabet, sum[n]) == NULL) {
            abort();
        }
    }

    /* a prefix of the input that is a valid prefix makes a valid key */

    if (size >= 2 && size <= 16
        && ngx_http_apikey_key_prefix_valid(key, size))
    {
        n = ngx_http_apikey_key_generate(key, size, fixed);

        if (n != size + 36 || !ngx_http_apikey_key_check(fixed, n)) {
            abort();
        }

        fixed[n - 1] = fixed[n - 1] == '0' ? '1' : '0';

        if (ngx_http_apikey_key_check(fixed, n)) {
            abort();
        }
    }

    if (secret && slen == 0) {
        secret = NULL;
    }

    h = ngx_http_apikey_hasher_create(secret, slen);
    if (h == NULL) {
        abort();
    }

    if (ngx_http_apikey_hasher_digest(h, key, size, got) != 0) {
        abort();
    }

    /* twice: the contexts are reused from one token to the next */

    if (ngx_http_apikey_hasher_digest(h, key, size, got) != 0) {
        abort();
    }

    if (secret) {
        if (HMAC(EVP_sha256(), secret, (int) slen, key, size, want, &n)
            == NULL)
        {
            abort();
        }

    } else if (EVP_Digest(key, size, want, &n, EVP_sha256(), NULL) != 1) {
        abort();
    }

    if (n != 32 || memcmp(got, want, 32) != 0) {
        abort();
    }

    ngx_http_apikey_hasher_free(h);
    free(key);

    return 0;
}
