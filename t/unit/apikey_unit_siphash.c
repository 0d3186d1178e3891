
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * SipHash-2-4, the cache zone's bucket index: the reference vectors (and
 * OpenSSL's SIPHASH for every length up to 64), and digests that share
 * their first bytes, as ground for an unseeded index, spread over the
 * buckets, differently under another key.
 */


#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_http_apikey_siphash.h"
#include "apikey_unit.h"


/* a 10m zone's buckets, and as many digests */
#define NGX_HTTP_APIKEY_UNIT_BUCKETS  16384


static void ngx_http_apikey_unit_siphash_vectors(void);
static int ngx_http_apikey_unit_siphash_openssl(const unsigned char *key,
    const unsigned char *p, size_t len, uint64_t *out);
static void ngx_http_apikey_unit_siphash_spread(void);
static unsigned ngx_http_apikey_unit_siphash_longest(const unsigned char *key,
    unsigned char (*digests)[32], unsigned *bucket);


void
ngx_http_apikey_unit_siphash(void)
{
    ngx_http_apikey_unit_siphash_vectors();
    ngx_http_apikey_unit_siphash_spread();
}


static void
ngx_http_apikey_unit_siphash_vectors(void)
{
    size_t         i, ok;
    uint64_t       want;
    unsigned char  key[16], msg[64];

    for (i = 0; i < 16; i++) {
        key[i] = (unsigned char) i;
    }

    for (i = 0; i < 64; i++) {
        msg[i] = (unsigned char) i;
    }

    /* the paper's example, appendix A */

    ngx_http_apikey_unit_ok(ngx_http_apikey_siphash(key, msg, 15)
                            == 0xa129ca6149be45e5ULL,
                            "siphash: the paper's 15-byte example");

    ok = 0;

    for (i = 0; i <= 64; i++) {
        if (ngx_http_apikey_unit_siphash_openssl(key, msg, i, &want) == 0
            && ngx_http_apikey_siphash(key, msg, i) == want)
        {
            ok++;
        }
    }

    ngx_http_apikey_unit_is_int(ok, 65, "siphash: as OpenSSL's for 0 to 64 "
                                "bytes");
}


static int
ngx_http_apikey_unit_siphash_openssl(const unsigned char *key,
    const unsigned char *p, size_t len, uint64_t *out)
{
    int            rc;
    size_t         i, n, size;
    EVP_MAC       *mac;
    OSSL_PARAM     params[2];
    EVP_MAC_CTX   *ctx;
    unsigned char  md[8];

    size = 8;
    params[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size);
    params[1] = OSSL_PARAM_construct_end();

    rc = -1;
    ctx = NULL;

    mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    if (mac == NULL) {
        return -1;
    }

    ctx = EVP_MAC_CTX_new(mac);

    if (ctx != NULL
        && EVP_MAC_init(ctx, key, 16, params)
        && EVP_MAC_update(ctx, p, len)
        && EVP_MAC_final(ctx, md, &n, sizeof(md))
        && n == 8)
    {
        *out = 0;

        for (i = 0; i < 8; i++) {
            *out |= (uint64_t) md[i] << (8 * i);
        }

        rc = 0;
    }

    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);

    return rc;
}


static void
ngx_http_apikey_unit_siphash_spread(void)
{
    size_t          i, same;
    unsigned        longest, *a, *b;
    unsigned char   key[2][16], (*digests)[32];

    digests = malloc(NGX_HTTP_APIKEY_UNIT_BUCKETS * 32);
    a = malloc(NGX_HTTP_APIKEY_UNIT_BUCKETS * sizeof(unsigned));
    b = malloc(NGX_HTTP_APIKEY_UNIT_BUCKETS * sizeof(unsigned));

    if (digests == NULL || a == NULL || b == NULL
        || RAND_bytes(key[0], 16) != 1 || RAND_bytes(key[1], 16) != 1
        || RAND_bytes(digests[0], NGX_HTTP_APIKEY_UNIT_BUCKETS * 32) != 1)
    {
        ngx_http_apikey_unit_ok(0, "siphash: memory and randomness");
        goto done;
    }

    /* all in one bucket of any unseeded index up to 2^32 buckets */

    for (i = 1; i < NGX_HTTP_APIKEY_UNIT_BUCKETS; i++) {
        memcpy(digests[i], digests[0], 8);
    }

    /*
     * As many digests as buckets: the longest chain of random places is
     * about 7 (ln n / ln ln n); 16 happens with a chance below 2^-40.
     */

    longest = ngx_http_apikey_unit_siphash_longest(key[0], digests, a);
    ngx_http_apikey_unit_ok(longest <= 16, "siphash: digests that share "
                            "their first 8 bytes spread over the buckets");
    if (longest > 16) {
        printf("     the longest chain has %u digests\n", longest);
    }

    ngx_http_apikey_unit_siphash_longest(key[1], digests, b);

    same = 0;

    for (i = 0; i < NGX_HTTP_APIKEY_UNIT_BUCKETS; i++) {
        same += (a[i] == b[i]);
    }

    /* 1 in 16384 of them by chance: about 1 */

    ngx_http_apikey_unit_ok(same < 32, "siphash: another key, other "
                            "buckets");

done:

    free(digests);
    free(a);
    free(b);
}


/* the longest chain, and each digest's bucket */

static unsigned
ngx_http_apikey_unit_siphash_longest(const unsigned char *key,
    unsigned char (*digests)[32], unsigned *bucket)
{
    size_t     i;
    unsigned   longest, *chain;

    chain = calloc(NGX_HTTP_APIKEY_UNIT_BUCKETS, sizeof(unsigned));
    if (chain == NULL) {
        return (unsigned) -1;
    }

    longest = 0;

    for (i = 0; i < NGX_HTTP_APIKEY_UNIT_BUCKETS; i++) {
        bucket[i] = ngx_http_apikey_siphash(key, digests[i], 32)
                    & (NGX_HTTP_APIKEY_UNIT_BUCKETS - 1);

        if (++chain[bucket[i]] > longest) {
            longest = chain[bucket[i]];
        }
    }

    free(chain);

    return longest;
}
