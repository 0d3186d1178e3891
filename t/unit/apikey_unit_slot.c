
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Cluster hash slots; expected values from CLUSTER KEYSLOT of Redis 7.0.
 */


#include <stdio.h>
#include <string.h>

#include "ngx_http_apikey_slot.h"
#include "apikey_unit.h"


void
ngx_http_apikey_unit_slot(void)
{
    size_t  i;
    char    name[128];

    static const struct {
        const char  *key;
        unsigned     slot;
    } slots[] = {
        { "123456789", 12739 },           /* the CRC16-XMODEM check value */
        { "foo", 12182 },
        { "bar", 5061 },
        { "", 0 },
        { "{user1000}.following", 3443 },  /* the tag alone */
        { "a{}b", 13694 },                /* an empty tag: the whole key */
        { "{}x{y}", 2166 },               /* only the first "{" counts */
        { "{a", 10276 },                  /* no "}": the whole key */
        { "x{b}c{d}", 3300 },
        { "apikey:id:abc", 11 },
        { "apikey:ids", 588 },
    };

    for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
        snprintf(name, sizeof(name), "slot of \"%s\"", slots[i].key);

        ngx_http_apikey_unit_is_int(
            ngx_http_apikey_slot((const unsigned char *) slots[i].key,
                                 strlen(slots[i].key)),
            slots[i].slot, name);
    }
}
