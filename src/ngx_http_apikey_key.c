
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The key format and the token hash: plain C and OpenSSL, no nginx header,
 * so that the module and the apikey tool share one implementation.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>

#include "ngx_http_apikey_key.h"


/* the largest multiple of 62 that fits in a byte: 4 * 62 */
#define NGX_HTTP_APIKEY_KEY_RAND_LIMIT  248


static int ngx_http_apikey_key_prefix_char(unsigned char c);
static int ngx_http_apikey_key_base62_value(unsigned char c);


static const unsigned char  ngx_http_apikey_key_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";


/* CRC-32/IEEE (reflected polynomial 0xedb88320), as zlib and Ethernet */

static const uint32_t  ngx_http_apikey_key_crc32_table[256] = {
    0x00000000, 0x77073096, 0xee0e612c, 0x990951ba,
    0x076dc419, 0x706af48f, 0xe963a535, 0x9e6495a3,
    0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988,
    0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91,
    0x1db71064, 0x6ab020f2, 0xf3b97148, 0x84be41de,
    0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
    0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec,
    0x14015c4f, 0x63066cd9, 0xfa0f3d63, 0x8d080df5,
    0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172,
    0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b,
    0x35b5a8fa, 0x42b2986c, 0xdbbbc9d6, 0xacbcf940,
    0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
    0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116,
    0x21b4f4b5, 0x56b3c423, 0xcfba9599, 0xb8bda50f,
    0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924,
    0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d,
    0x76dc4190, 0x01db7106, 0x98d220bc, 0xefd5102a,
    0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
    0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818,
    0x7f6a0dbb, 0x086d3d2d, 0x91646c97, 0xe6635c01,
    0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e,
    0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457,
    0x65b0d9c6, 0x12b7e950, 0x8bbeb8ea, 0xfcb9887c,
    0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
    0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2,
    0x4adfa541, 0x3dd895d7, 0xa4d1c46d, 0xd3d6f4fb,
    0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0,
    0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9,
    0x5005713c, 0x270241aa, 0xbe0b1010, 0xc90c2086,
    0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
    0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4,
    0x59b33d17, 0x2eb40d81, 0xb7bd5c3b, 0xc0ba6cad,
    0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a,
    0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683,
    0xe3630b12, 0x94643b84, 0x0d6d6a3e, 0x7a6a5aa8,
    0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
    0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe,
    0xf762575d, 0x806567cb, 0x196c3671, 0x6e6b06e7,
    0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc,
    0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5,
    0xd6d6a3e8, 0xa1d1937e, 0x38d8c2c4, 0x4fdff252,
    0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
    0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60,
    0xdf60efc3, 0xa867df55, 0x316e8eef, 0x4669be79,
    0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236,
    0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f,
    0xc5ba3bbe, 0xb2bd0b28, 0x2bb45a92, 0x5cb36a04,
    0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
    0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a,
    0x9c0906a9, 0xeb0e363f, 0x72076785, 0x05005713,
    0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38,
    0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21,
    0x86d3d2d4, 0xf1d4e242, 0x68ddb3f8, 0x1fda836e,
    0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
    0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c,
    0x8f659eff, 0xf862ae69, 0x616bffd3, 0x166ccf45,
    0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2,
    0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db,
    0xaed16a4a, 0xd9d65adc, 0x40df0b66, 0x37d83bf0,
    0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
    0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6,
    0xbad03605, 0xcdd70693, 0x54de5729, 0x23d967bf,
    0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94,
    0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d
};


int
ngx_http_apikey_key_prefix_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_APIKEY_KEY_PREFIX_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!ngx_http_apikey_key_prefix_char(p[i])) {
            return 0;
        }
    }

    return p[len - 1] == '_';
}


uint32_t
ngx_http_apikey_key_crc32(const unsigned char *p, size_t len)
{
    size_t    i;
    uint32_t  crc;

    crc = 0xffffffff;

    for (i = 0; i < len; i++) {
        crc = ngx_http_apikey_key_crc32_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }

    return crc ^ 0xffffffff;
}


void
ngx_http_apikey_key_base62(uint32_t n, unsigned char *out)
{
    size_t  i;

    for (i = NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN; i > 0; i--) {
        out[i - 1] = ngx_http_apikey_key_alphabet[n % 62];
        n /= 62;
    }
}


int
ngx_http_apikey_key_random(unsigned char *out, size_t n)
{
    size_t         i, done;
    unsigned char  buf[64];

    done = 0;

    /*
     * Rejection sampling: a byte of 248 or more is dropped, so that every
     * character of the alphabet is equally likely (248 = 4 * 62).
     */

    while (done < n) {

        if (RAND_bytes(buf, sizeof(buf)) != 1) {
            OPENSSL_cleanse(buf, sizeof(buf));
            OPENSSL_cleanse(out, n);
            return -1;
        }

        for (i = 0; i < sizeof(buf) && done < n; i++) {
            if (buf[i] < NGX_HTTP_APIKEY_KEY_RAND_LIMIT) {
                out[done++] = ngx_http_apikey_key_alphabet[buf[i] % 62];
            }
        }
    }

    OPENSSL_cleanse(buf, sizeof(buf));

    return 0;
}


size_t
ngx_http_apikey_key_generate(const unsigned char *prefix, size_t prefix_len,
    unsigned char *out)
{
    size_t  len;

    if (!ngx_http_apikey_key_prefix_valid(prefix, prefix_len)) {
        return 0;
    }

    memcpy(out, prefix, prefix_len);

    if (ngx_http_apikey_key_random(out + prefix_len,
                                   NGX_HTTP_APIKEY_KEY_RANDOM_LEN)
        != 0)
    {
        return 0;
    }

    len = prefix_len + NGX_HTTP_APIKEY_KEY_RANDOM_LEN;

    ngx_http_apikey_key_base62(ngx_http_apikey_key_crc32(out, len), out + len);

    return len + NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN;
}


int
ngx_http_apikey_key_check(const unsigned char *key, size_t len)
{
    size_t          i, prefix_len, data_len;
    unsigned char   sum[NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN];

    if (len <= NGX_HTTP_APIKEY_KEY_BODY_LEN
        || len > NGX_HTTP_APIKEY_KEY_MAX_LEN)
    {
        return 0;
    }

    prefix_len = len - NGX_HTTP_APIKEY_KEY_BODY_LEN;

    if (!ngx_http_apikey_key_prefix_valid(key, prefix_len)) {
        return 0;
    }

    for (i = prefix_len; i < len; i++) {
        if (ngx_http_apikey_key_base62_value(key[i]) < 0) {
            return 0;
        }
    }

    data_len = len - NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN;

    ngx_http_apikey_key_base62(ngx_http_apikey_key_crc32(key, data_len), sum);

    return memcmp(sum, key + data_len, NGX_HTTP_APIKEY_KEY_CHECKSUM_LEN) == 0;
}


int
ngx_http_apikey_key_hash(const EVP_MD *md, const unsigned char *secret,
    size_t secret_len, const unsigned char *token, size_t len,
    unsigned char *hex)
{
    unsigned int   n;
    unsigned char  digest[EVP_MAX_MD_SIZE];

    if (secret_len > 0) {
        if (HMAC(md, secret, (int) secret_len, token, len, digest, &n)
            == NULL)
        {
            return -1;
        }

    } else {
        if (EVP_Digest(token, len, digest, &n, md, NULL) != 1) {
            return -1;
        }
    }

    if (n != NGX_HTTP_APIKEY_HASH_LEN) {
        OPENSSL_cleanse(digest, sizeof(digest));
        return -1;
    }

    ngx_http_apikey_key_hex(digest, hex);

    OPENSSL_cleanse(digest, sizeof(digest));

    return 0;
}


void
ngx_http_apikey_key_hex(const unsigned char *digest, unsigned char *hex)
{
    size_t  i;

    static const unsigned char  xdigits[] = "0123456789abcdef";

    for (i = 0; i < NGX_HTTP_APIKEY_HASH_LEN; i++) {
        hex[2 * i] = xdigits[digest[i] >> 4];
        hex[2 * i + 1] = xdigits[digest[i] & 0xf];
    }
}


struct ngx_http_apikey_hasher_s {
    EVP_MD         *md;
    EVP_MD_CTX     *md_ctx;
    EVP_MAC        *mac;
    EVP_MAC_CTX    *mac_ctx;
};


ngx_http_apikey_hasher_t *
ngx_http_apikey_hasher_create(const unsigned char *secret, size_t secret_len)
{
    OSSL_PARAM                 params[2];
    ngx_http_apikey_hasher_t  *h;

    h = calloc(1, sizeof(ngx_http_apikey_hasher_t));
    if (h == NULL) {
        return NULL;
    }

    if (secret_len == 0) {
        h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
        h->md_ctx = EVP_MD_CTX_new();

        if (h->md == NULL || h->md_ctx == NULL) {
            goto failed;
        }

        return h;
    }

    h->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (h->mac == NULL) {
        goto failed;
    }

    h->mac_ctx = EVP_MAC_CTX_new(h->mac);
    if (h->mac_ctx == NULL) {
        goto failed;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    /* the key is set once; EVP_MAC_init() without a key reuses it */

    if (EVP_MAC_init(h->mac_ctx, secret, secret_len, params) != 1) {
        goto failed;
    }

    return h;

failed:

    ngx_http_apikey_hasher_free(h);

    return NULL;
}


int
ngx_http_apikey_hasher_digest(ngx_http_apikey_hasher_t *h,
    const unsigned char *token, size_t len, unsigned char *digest)
{
    size_t        size;
    unsigned int  n;

    if (h->mac_ctx) {
        if (EVP_MAC_init(h->mac_ctx, NULL, 0, NULL) != 1
            || EVP_MAC_update(h->mac_ctx, token, len) != 1
            || EVP_MAC_final(h->mac_ctx, digest, &size,
                             NGX_HTTP_APIKEY_HASH_LEN)
               != 1
            || size != NGX_HTTP_APIKEY_HASH_LEN)
        {
            return -1;
        }

        return 0;
    }

    if (EVP_DigestInit_ex2(h->md_ctx, h->md, NULL) != 1
        || EVP_DigestUpdate(h->md_ctx, token, len) != 1
        || EVP_DigestFinal_ex(h->md_ctx, digest, &n) != 1
        || n != NGX_HTTP_APIKEY_HASH_LEN)
    {
        return -1;
    }

    return 0;
}


void
ngx_http_apikey_hasher_free(ngx_http_apikey_hasher_t *h)
{
    EVP_MAC_CTX_free(h->mac_ctx);
    EVP_MAC_free(h->mac);
    EVP_MD_CTX_free(h->md_ctx);
    EVP_MD_free(h->md);
    free(h);
}


static int
ngx_http_apikey_key_prefix_char(unsigned char c)
{
    return (c >= '0' && c <= '9')
           || (c >= 'A' && c <= 'Z')
           || (c >= 'a' && c <= 'z')
           || c == '_';
}


static int
ngx_http_apikey_key_base62_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'Z') {
        return c - 'A' + 10;
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 36;
    }

    return -1;
}
