
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed hash short inputs
 * can be indexed by without a client choosing where they land.  This file
 * pair includes no nginx header, so that the unit tests can link it.
 */


#ifndef _NGX_HTTP_APIKEY_SIPHASH_H_INCLUDED_
#define _NGX_HTTP_APIKEY_SIPHASH_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_APIKEY_SIPHASH_KEY_LEN  16


/* the 64-bit result, the reference's 8 output bytes read little-endian */
uint64_t ngx_http_apikey_siphash(const unsigned char *key,
    const unsigned char *p, size_t len);


#endif /* _NGX_HTTP_APIKEY_SIPHASH_H_INCLUDED_ */
