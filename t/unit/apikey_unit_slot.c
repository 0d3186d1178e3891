
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Redis Cluster key slots: the specification's CRC16 check value, slots
 * Redis itself gives (CLUSTER KEYSLOT), and the hash tag rules.
 */


#include "ngx_http_apikey_slot.h"
#include "apikey_unit.h"


#define ngx_http_apikey_unit_slot_of(s)                                       \
    ngx_http_apikey_slot((const unsigned char *) s, sizeof(s) - 1)


void
ngx_http_apikey_unit_slot(void)
{
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_slot_crc16((const unsigned char *) "123456789", 9),
        0x31c3, "CRC16/XMODEM check value");

    ngx_http_apikey_unit_is_int(ngx_http_apikey_unit_slot_of("foo"), 12182,
                                "slot of foo as CLUSTER KEYSLOT says");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_unit_slot_of("hello"), 866,
                                "slot of hello as CLUSTER KEYSLOT says");
    ngx_http_apikey_unit_is_int(ngx_http_apikey_unit_slot_of(""), 0,
                                "the empty key is in slot 0");

    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_unit_slot_of("{user1000}.following"),
        ngx_http_apikey_unit_slot_of("user1000"),
        "a hash tag alone decides the slot");
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_unit_slot_of("foo{bar}{zap}"),
        ngx_http_apikey_unit_slot_of("bar"),
        "the first hash tag counts");
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_unit_slot_of("foo{{bar}}zap"),
        ngx_http_apikey_unit_slot_of("{bar"),
        "the tag ends at the first closing brace");
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_unit_slot_of("foo{}{bar}"),
        ngx_http_apikey_slot_crc16((const unsigned char *) "foo{}{bar}", 10)
        % 16384,
        "an empty tag: the whole key counts");
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_unit_slot_of("foo{bar"),
        ngx_http_apikey_slot_crc16((const unsigned char *) "foo{bar", 7)
        % 16384,
        "an unclosed brace: the whole key counts");
}
