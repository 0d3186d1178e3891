
/*
 * Copyright (C) the ngx_http_apikey_module authors
 */


#include "ngx_http_apikey_slot.h"


unsigned
ngx_http_apikey_slot(const unsigned char *key, size_t len)
{
    size_t  open, close;

    for (open = 0; open < len; open++) {
        if (key[open] == '{') {
            break;
        }
    }

    for (close = open + 1; close < len; close++) {
        if (key[close] == '}') {
            break;
        }
    }

    /* "{}" or no closing brace: the whole key counts */

    if (close < len && close > open + 1) {
        key += open + 1;
        len = close - open - 1;
    }

    return ngx_http_apikey_slot_crc16(key, len) & (NGX_HTTP_APIKEY_SLOTS - 1);
}


/* polynomial 0x1021, initial value 0, no reflection, no final xor */

uint16_t
ngx_http_apikey_slot_crc16(const unsigned char *p, size_t len)
{
    unsigned  i;
    uint16_t  crc;

    crc = 0;

    while (len--) {
        crc ^= (uint16_t) (*p++ << 8);

        for (i = 0; i < 8; i++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}
