
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The Redis Cluster hash slot of a key, as the Cluster specification
 * defines it, shared by the module and the apikey tool.  This file pair
 * includes no nginx header.
 */


#ifndef _NGX_HTTP_APIKEY_SLOT_H_INCLUDED_
#define _NGX_HTTP_APIKEY_SLOT_H_INCLUDED_


#include <stddef.h>


#define NGX_HTTP_APIKEY_SLOTS  16384


/*
 * CRC16-XMODEM of the key mod 16384; of only the part between the first
 * "{" and the "}" after it when that part is not empty (a hash tag).
 */
unsigned ngx_http_apikey_slot(const unsigned char *key, size_t len);


#endif /* _NGX_HTTP_APIKEY_SLOT_H_INCLUDED_ */
