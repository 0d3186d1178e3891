
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The Redis Cluster slot of a key: CRC16 (XMODEM) of the key, or of its
 * hash tag (the text between the first "{" and the next "}", if not
 * empty), modulo 16384, as the Cluster specification defines it.  This
 * file pair includes no nginx header: the CLI routes its writes with it.
 */


#ifndef _NGX_HTTP_APIKEY_SLOT_H_INCLUDED_
#define _NGX_HTTP_APIKEY_SLOT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_HTTP_APIKEY_SLOTS  16384


unsigned ngx_http_apikey_slot(const unsigned char *key, size_t len);
uint16_t ngx_http_apikey_slot_crc16(const unsigned char *p, size_t len);


#endif /* _NGX_HTTP_APIKEY_SLOT_H_INCLUDED_ */
