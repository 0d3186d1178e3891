
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * IP allowlists: plain C and libc, no nginx header, so that the module and
 * the apikey tool read a "cidrs" field the same way.
 */


#include <string.h>
#include <arpa/inet.h>

#include "ngx_http_apikey_cidr.h"


static int ngx_http_apikey_cidr_next(const unsigned char **pos,
    const unsigned char *last, ngx_http_apikey_cidr_t *net);
static int ngx_http_apikey_cidr_ipv4(const unsigned char *p,
    const unsigned char *last, unsigned char *addr);
static int ngx_http_apikey_cidr_prefix(const unsigned char *p,
    const unsigned char *last, unsigned max);
static int ngx_http_apikey_cidr_mapped(const unsigned char *addr);
static void ngx_http_apikey_cidr_mask(ngx_http_apikey_cidr_t *cidr);
static int ngx_http_apikey_cidr_inside(const ngx_http_apikey_cidr_t *net,
    const ngx_http_apikey_cidr_t *addr);


static const unsigned char  ngx_http_apikey_cidr_v4mapped[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};


int
ngx_http_apikey_cidr_parse(const unsigned char *text, size_t len,
    ngx_http_apikey_cidr_t *cidr)
{
    int                   prefix;
    char                  buf[NGX_HTTP_APIKEY_CIDR_MAX_LEN + 1];
    size_t                n;
    unsigned char         addr[16];
    const unsigned char  *slash;

    if (len == 0 || len > NGX_HTTP_APIKEY_CIDR_MAX_LEN) {
        return -1;
    }

    slash = memchr(text, '/', len);
    n = (slash != NULL) ? (size_t) (slash - text) : len;

    memset(cidr, 0, sizeof(ngx_http_apikey_cidr_t));

    /* IPv4 the quick way */

    if (memchr(text, ':', n) == NULL) {
        if (ngx_http_apikey_cidr_ipv4(text, text + n, cidr->addr) != 0) {
            return -1;
        }

        cidr->family = 4;
        cidr->prefix = 32;

    } else {

        /* inet_pton() wants a C string, and must not see a NUL inside */

        if (memchr(text, '\0', n) != NULL) {
            return -1;
        }

        memcpy(buf, text, n);
        buf[n] = '\0';

        if (inet_pton(AF_INET6, buf, addr) != 1) {
            return -1;
        }

        cidr->family = 6;
        cidr->prefix = 128;
        memcpy(cidr->addr, addr, 16);
    }

    if (slash != NULL) {
        prefix = ngx_http_apikey_cidr_prefix(slash + 1, text + len,
                                             cidr->prefix);
        if (prefix < 0) {
            return -1;
        }

        cidr->prefix = (unsigned char) prefix;
    }

    /*
     * ::ffff:192.0.2.0/120 is 192.0.2.0/24: a client address of that form
     * is matched as IPv4, so must be the network
     */

    if (cidr->family == 6 && cidr->prefix >= 96
        && ngx_http_apikey_cidr_mapped(cidr->addr))
    {
        memmove(cidr->addr, cidr->addr + 12, 4);
        memset(cidr->addr + 4, 0, 12);
        cidr->family = 4;
        cidr->prefix -= 96;
    }

    /* as nginx's "allow" does, host bits are ignored */
    ngx_http_apikey_cidr_mask(cidr);

    return 0;
}


void
ngx_http_apikey_cidr_address(ngx_http_apikey_cidr_t *addr, int family,
    const unsigned char *bytes)
{
    memset(addr, 0, sizeof(ngx_http_apikey_cidr_t));

    if (family == 6 && ngx_http_apikey_cidr_mapped(bytes)) {
        family = 4;
        bytes += 12;
    }

    if (family == 4) {
        addr->family = 4;
        addr->prefix = 32;
        memcpy(addr->addr, bytes, 4);

    } else if (family == 6) {
        addr->family = 6;
        addr->prefix = 128;
        memcpy(addr->addr, bytes, 16);
    }
}


int
ngx_http_apikey_cidr_match(const unsigned char *list, size_t len,
    const ngx_http_apikey_cidr_t *addr)
{
    int                     rc, found, any;
    const unsigned char    *p, *last;
    ngx_http_apikey_cidr_t  net;

    found = 0;
    any = 0;

    p = list;
    last = list + len;

    /* every network is parsed, even after a match: see the header */

    while ((rc = ngx_http_apikey_cidr_next(&p, last, &net)) > 0) {
        any = 1;

        if (!found && addr != NULL && ngx_http_apikey_cidr_inside(&net, addr))
        {
            found = 1;
        }
    }

    return (rc < 0 || !any) ? -1 : found;
}


size_t
ngx_http_apikey_cidr_count(const unsigned char *list, size_t len)
{
    size_t                n;
    const unsigned char  *p, *last;

    n = 0;
    last = list + len;

    for (p = list; p < last; p++) {
        if (*p != ' ' && (p == list || p[-1] == ' ')) {
            n++;
        }
    }

    return n;
}


int
ngx_http_apikey_cidr_list(const unsigned char *list, size_t len,
    ngx_http_apikey_cidr_t *nets)
{
    int                   rc, n;
    const unsigned char  *p, *last;

    n = 0;
    p = list;
    last = list + len;

    while ((rc = ngx_http_apikey_cidr_next(&p, last, &nets[n])) > 0) {
        n++;
    }

    return (rc < 0 || n == 0) ? -1 : n;
}


int
ngx_http_apikey_cidr_find(const ngx_http_apikey_cidr_t *nets, size_t n,
    const ngx_http_apikey_cidr_t *addr)
{
    size_t  i;

    if (addr == NULL) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_apikey_cidr_inside(&nets[i], addr)) {
            return 1;
        }
    }

    return 0;
}


/* the next network of a list: 1, 0 at its end, -1 if it is not one */

static int
ngx_http_apikey_cidr_next(const unsigned char **pos, const unsigned char *last,
    ngx_http_apikey_cidr_t *net)
{
    const unsigned char  *p, *start;

    p = *pos;

    while (p < last && *p == ' ') {
        p++;
    }

    if (p == last) {
        *pos = p;
        return 0;
    }

    start = p;

    while (p < last && *p != ' ') {
        p++;
    }

    *pos = p;

    return (ngx_http_apikey_cidr_parse(start, p - start, net) == 0) ? 1 : -1;
}


/* dotted-quad as inet_pton() reads it: four decimals 0-255, no leading 0 */

static int
ngx_http_apikey_cidr_ipv4(const unsigned char *p, const unsigned char *last,
    unsigned char *addr)
{
    unsigned  i, n, digits;

    for (i = 0; i < 4; i++) {

        if (i > 0) {
            if (p == last || *p != '.') {
                return -1;
            }

            p++;
        }

        n = 0;

        for (digits = 0; p < last && *p >= '0' && *p <= '9'; digits++) {
            if (digits > 0 && n == 0) {
                return -1;
            }

            n = n * 10 + (*p++ - '0');

            if (n > 255) {
                return -1;
            }
        }

        if (digits == 0) {
            return -1;
        }

        addr[i] = (unsigned char) n;
    }

    return (p == last) ? 0 : -1;
}


/* a prefix length: decimal, no sign, no leading zero */

static int
ngx_http_apikey_cidr_prefix(const unsigned char *p, const unsigned char *last,
    unsigned max)
{
    unsigned  n;

    if (p == last || last - p > 3 || (*p == '0' && last - p > 1)) {
        return -1;
    }

    for (n = 0; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        n = n * 10 + (*p - '0');
    }

    return (n <= max) ? (int) n : -1;
}


static int
ngx_http_apikey_cidr_mapped(const unsigned char *addr)
{
    return memcmp(addr, ngx_http_apikey_cidr_v4mapped,
                  sizeof(ngx_http_apikey_cidr_v4mapped))
           == 0;
}


static void
ngx_http_apikey_cidr_mask(ngx_http_apikey_cidr_t *cidr)
{
    unsigned  i, bits;

    i = cidr->prefix / 8;
    bits = cidr->prefix % 8;

    if (bits) {
        cidr->addr[i++] &= (unsigned char) (0xff00 >> bits);
    }

    if (i < 16) {
        memset(cidr->addr + i, 0, 16 - i);
    }
}


static int
ngx_http_apikey_cidr_inside(const ngx_http_apikey_cidr_t *net,
    const ngx_http_apikey_cidr_t *addr)
{
    unsigned  whole, bits;

    if (net->family != addr->family) {
        return 0;
    }

    whole = net->prefix / 8;
    bits = net->prefix % 8;

    if (memcmp(net->addr, addr->addr, whole) != 0) {
        return 0;
    }

    return bits == 0
           || ((net->addr[whole] ^ addr->addr[whole])
               & (unsigned char) (0xff00 >> bits))
              == 0;
}
