
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include "ngx_http_apikey_siphash.h"


#define ngx_http_apikey_siphash_rotl(x, b)                                   \
    (((x) << (b)) | ((x) >> (64 - (b))))

#define ngx_http_apikey_siphash_round(v0, v1, v2, v3)                        \
    v0 += v1; v1 = ngx_http_apikey_siphash_rotl(v1, 13); v1 ^= v0;           \
    v0 = ngx_http_apikey_siphash_rotl(v0, 32);                               \
    v2 += v3; v3 = ngx_http_apikey_siphash_rotl(v3, 16); v3 ^= v2;           \
    v0 += v3; v3 = ngx_http_apikey_siphash_rotl(v3, 21); v3 ^= v0;           \
    v2 += v1; v1 = ngx_http_apikey_siphash_rotl(v1, 17); v1 ^= v2;           \
    v2 = ngx_http_apikey_siphash_rotl(v2, 32)


static uint64_t ngx_http_apikey_siphash_le64(const unsigned char *p);


uint64_t
ngx_http_apikey_siphash(const unsigned char *key, const unsigned char *p,
    size_t len)
{
    size_t    i;
    uint64_t  k0, k1, v0, v1, v2, v3, m, b;

    k0 = ngx_http_apikey_siphash_le64(key);
    k1 = ngx_http_apikey_siphash_le64(key + 8);

    v0 = k0 ^ 0x736f6d6570736575ULL;
    v1 = k1 ^ 0x646f72616e646f6dULL;
    v2 = k0 ^ 0x6c7967656e657261ULL;
    v3 = k1 ^ 0x7465646279746573ULL;

    for (i = 0; i + 8 <= len; i += 8) {
        m = ngx_http_apikey_siphash_le64(p + i);

        v3 ^= m;
        ngx_http_apikey_siphash_round(v0, v1, v2, v3);
        ngx_http_apikey_siphash_round(v0, v1, v2, v3);
        v0 ^= m;
    }

    /* the last block: the bytes left, and the length in the top byte */

    b = (uint64_t) len << 56;

    switch (len & 7) {
    case 7:
        b |= (uint64_t) p[i + 6] << 48;
        /* fall through */
    case 6:
        b |= (uint64_t) p[i + 5] << 40;
        /* fall through */
    case 5:
        b |= (uint64_t) p[i + 4] << 32;
        /* fall through */
    case 4:
        b |= (uint64_t) p[i + 3] << 24;
        /* fall through */
    case 3:
        b |= (uint64_t) p[i + 2] << 16;
        /* fall through */
    case 2:
        b |= (uint64_t) p[i + 1] << 8;
        /* fall through */
    case 1:
        b |= (uint64_t) p[i];
        /* fall through */
    default:
        break;
    }

    v3 ^= b;
    ngx_http_apikey_siphash_round(v0, v1, v2, v3);
    ngx_http_apikey_siphash_round(v0, v1, v2, v3);
    v0 ^= b;

    v2 ^= 0xff;
    ngx_http_apikey_siphash_round(v0, v1, v2, v3);
    ngx_http_apikey_siphash_round(v0, v1, v2, v3);
    ngx_http_apikey_siphash_round(v0, v1, v2, v3);
    ngx_http_apikey_siphash_round(v0, v1, v2, v3);

    return v0 ^ v1 ^ v2 ^ v3;
}


static uint64_t
ngx_http_apikey_siphash_le64(const unsigned char *p)
{
    return (uint64_t) p[0] | (uint64_t) p[1] << 8 | (uint64_t) p[2] << 16
           | (uint64_t) p[3] << 24 | (uint64_t) p[4] << 32
           | (uint64_t) p[5] << 40 | (uint64_t) p[6] << 48
           | (uint64_t) p[7] << 56;
}
