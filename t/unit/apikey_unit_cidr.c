
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * The "cidrs" field (src/ngx_http_apikey_cidr.c): which lists are
 * networks, and which addresses they hold; t/71-cidrs.t runs the same
 * through nginx.
 */


#include <arpa/inet.h>

#include "ngx_http_apikey_cidr.h"
#include "apikey_unit.h"


static void ngx_http_apikey_unit_cidr_parse(void);
static void ngx_http_apikey_unit_cidr_match(void);
static int ngx_http_apikey_unit_cidr_client(const char *list,
    const char *client);
static int ngx_http_apikey_unit_cidr_parsed(const char *list,
    const char *client);
static void ngx_http_apikey_unit_cidr_address(const char *client,
    ngx_http_apikey_cidr_t *addr);


void
ngx_http_apikey_unit_cidr(void)
{
    ngx_http_apikey_unit_cidr_parse();
    ngx_http_apikey_unit_cidr_match();
}


static void
ngx_http_apikey_unit_cidr_parse(void)
{
    size_t                  i;
    ngx_http_apikey_cidr_t  cidr;

    static const struct {
        const char  *text;
        int          rc;
        int          family;
        unsigned     prefix;
    } tests[] = {
        { "203.0.113.0/24", 0, 4, 24 },
        { "203.0.113.7", 0, 4, 32 },
        { "0.0.0.0/0", 0, 4, 0 },
        { "203.0.113.7/32", 0, 4, 32 },
        { "2001:db8::/32", 0, 6, 32 },
        { "2001:db8::1", 0, 6, 128 },
        { "::/0", 0, 6, 0 },
        { "::1", 0, 6, 128 },
        { "::ffff:192.0.2.0/120", 0, 4, 24 },
        { "::ffff:192.0.2.1", 0, 4, 32 },
        { "::ffff:0:0/95", 0, 6, 95 },
        { "", -1, 0, 0 },
        { "/24", -1, 0, 0 },
        { "203.0.113.0/", -1, 0, 0 },
        { "203.0.113.0/33", -1, 0, 0 },
        { "203.0.113.0/024", -1, 0, 0 },
        { "203.0.113.0/+4", -1, 0, 0 },
        { "203.0.113.0/24/8", -1, 0, 0 },
        { "203.0.113.0/1000", -1, 0, 0 },
        { "203.0.113", -1, 0, 0 },
        { "203.0.113.256", -1, 0, 0 },
        { "203.0.113.07", -1, 0, 0 },
        { "2001:db8::/129", -1, 0, 0 },
        { "2001:db8:::1", -1, 0, 0 },
        { "fe80::1%eth0", -1, 0, 0 },
        { "localhost", -1, 0, 0 },
        { "203.0.113.0 ", -1, 0, 0 },
        { "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", 0, 6, 128 },
        { "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/1280", -1, 0, 0 },
    };

    for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        ngx_http_apikey_unit_is_int(
            ngx_http_apikey_cidr_parse((const unsigned char *) tests[i].text,
                                       strlen(tests[i].text), &cidr),
            tests[i].rc, tests[i].text);

        if (tests[i].rc == 0) {
            ngx_http_apikey_unit_is_int(cidr.family, tests[i].family,
                                        tests[i].text);
            ngx_http_apikey_unit_is_int(cidr.prefix, tests[i].prefix,
                                        tests[i].text);
        }
    }

    /* a NUL inside must not end the address early */
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_cidr_parse((const unsigned char *) "10.0.0.1\0x", 10,
                                   &cidr),
        -1, "a NUL inside an address");

    /* host bits go, as with nginx's "allow" */
    ngx_http_apikey_cidr_parse((const unsigned char *) "203.0.113.77/25", 15,
                               &cidr);
    ngx_http_apikey_unit_is_int(cidr.addr[3], 0, "host bits cleared");
}


static void
ngx_http_apikey_unit_cidr_match(void)
{
    size_t                  i;
    ngx_http_apikey_cidr_t  none;

    static const struct {
        const char  *list;
        const char  *client;
        int          rc;
    } tests[] = {
        { "203.0.113.0/24", "203.0.113.9", 1 },
        { "203.0.113.0/24", "203.0.114.9", 0 },
        { "203.0.113.0/25", "203.0.113.127", 1 },
        { "203.0.113.0/25", "203.0.113.128", 0 },
        { "203.0.113.7", "203.0.113.7", 1 },
        { "203.0.113.7", "203.0.113.8", 0 },
        { "10.0.0.0/8 203.0.113.7", "203.0.113.7", 1 },
        { "  10.0.0.0/8   203.0.113.7 ", "203.0.113.7", 1 },
        { "0.0.0.0/0", "198.51.100.1", 1 },
        { "0.0.0.0/0", "2001:db8::1", 0 },
        { "2001:db8::/32", "2001:db8:1::5", 1 },
        { "2001:db8::/32", "2001:db9::5", 0 },
        { "2001:db8::/33", "2001:db8:8000::1", 0 },
        { "2001:db8::1", "2001:db8::1", 1 },
        { "2001:db8::1", "2001:db8::2", 0 },
        { "::/0", "203.0.113.1", 0 },

        /* an IPv4-mapped client is its IPv4 address */
        { "203.0.113.0/24", "::ffff:203.0.113.9", 1 },
        { "203.0.113.0/24", "::ffff:203.0.114.9", 0 },
        { "::ffff:203.0.113.0/120", "203.0.113.9", 1 },
        { "::ffff:0:0/96", "203.0.113.9", 1 },

        /* malformed anywhere: malformed, matched or not */
        { "203.0.113.0/24 bogus", "203.0.113.9", -1 },
        { "bogus 203.0.113.0/24", "203.0.113.9", -1 },
        { "203.0.113.0/24,10.0.0.0/8", "203.0.113.9", -1 },
        { "203.0.113.0/24\t10.0.0.0/8", "203.0.113.9", -1 },
        { "", "203.0.113.9", -1 },
        { "   ", "203.0.113.9", -1 },
    };

    for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        ngx_http_apikey_unit_is_int(
            ngx_http_apikey_unit_cidr_client(tests[i].list, tests[i].client),
            tests[i].rc, tests[i].list);

        /* the list parsed once (the module's records) answers the same */

        ngx_http_apikey_unit_is_int(
            ngx_http_apikey_unit_cidr_parsed(tests[i].list, tests[i].client),
            tests[i].rc, tests[i].list);
    }

    /* a client without an IP address (a UNIX socket) is in no network */

    ngx_http_apikey_cidr_address(&none, 0, NULL);

    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_cidr_match((const unsigned char *) "0.0.0.0/0", 9,
                                   &none),
        0, "no address, no match");
    ngx_http_apikey_unit_is_int(
        ngx_http_apikey_cidr_match((const unsigned char *) "0.0.0.0/0", 9,
                                   NULL),
        0, "no address given");
}


static int
ngx_http_apikey_unit_cidr_client(const char *list, const char *client)
{
    ngx_http_apikey_cidr_t  addr;

    ngx_http_apikey_unit_cidr_address(client, &addr);

    return ngx_http_apikey_cidr_match((const unsigned char *) list,
                                      strlen(list), &addr);
}


static int
ngx_http_apikey_unit_cidr_parsed(const char *list, const char *client)
{
    int                      n;
    size_t                   words;
    ngx_http_apikey_cidr_t   addr, nets[4];

    ngx_http_apikey_unit_cidr_address(client, &addr);

    words = ngx_http_apikey_cidr_count((const unsigned char *) list,
                                       strlen(list));
    if (words > 4) {
        return -2;
    }

    n = ngx_http_apikey_cidr_list((const unsigned char *) list, strlen(list),
                                  nets);
    if (n < 0) {
        return -1;
    }

    if ((size_t) n != words
        || ngx_http_apikey_cidr_find(nets, n, NULL) != 0)
    {
        return -2;
    }

    return ngx_http_apikey_cidr_find(nets, n, &addr);
}


static void
ngx_http_apikey_unit_cidr_address(const char *client,
    ngx_http_apikey_cidr_t *addr)
{
    unsigned char  bytes[16];

    if (strchr(client, ':') == NULL) {
        inet_pton(AF_INET, client, bytes);
        ngx_http_apikey_cidr_address(addr, 4, bytes);

    } else {
        inet_pton(AF_INET6, client, bytes);
        ngx_http_apikey_cidr_address(addr, 6, bytes);
    }
}
