
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include <stdint.h>
#include <string.h>

#include "ngx_http_apikey_slot.h"


static uint16_t ngx_http_apikey_crc16(const unsigned char *p, size_t len);


unsigned
ngx_http_apikey_slot(const unsigned char *key, size_t len)
{
    const unsigned char  *open, *close;

    open = memchr(key, '{', len);

    if (open != NULL) {
        close = memchr(open + 1, '}', key + len - open - 1);

        /* "{}" is no tag: the whole key is hashed, as Redis does */

        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = close - open - 1;
        }
    }

    return ngx_http_apikey_crc16(key, len) & (NGX_HTTP_APIKEY_SLOTS - 1);
}


/* CRC16-XMODEM (CCITT polynomial 0x1021, initial value 0), bit by bit */

static uint16_t
ngx_http_apikey_crc16(const unsigned char *p, size_t len)
{
    int       bit;
    uint16_t  crc;

    crc = 0;

    while (len--) {
        crc ^= (uint16_t) (*p++ << 8);

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}
