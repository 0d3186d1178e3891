
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * libFuzzer target: a record's "cidrs" field, ngx_http_apikey_cidr_match()
 * and ngx_http_apikey_cidr_parse(), fed a client address (the first 17
 * bytes: a family byte and 16 address bytes) and a list (the rest), as
 * Redis hands it over.  Besides memory errors, it checks what the parser
 * promises: IPv4 addresses are read as inet_pton() reads them; a list is
 * malformed whatever the address or never; an
 * IPv4-mapped client is its IPv4 address; a network parsed has its host
 * bits cleared and a prefix of its family, and holds its own address.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "ngx_http_apikey_cidr.h"


static void ngx_http_apikey_fuzz_parsed(const unsigned char *list,
    size_t len, const ngx_http_apikey_cidr_t *client, int rc);
static void ngx_http_apikey_fuzz_network(const unsigned char *text,
    size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
ngx_http_apikey_fuzz_network(const unsigned char *text, size_t len)
{
    int                     rc;
    char                    buf[64];
    unsigned                bit;
    unsigned char          *copy, bytes[16];
    ngx_http_apikey_cidr_t  net, addr;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return;
    }

    memcpy(copy, text, len);

    rc = ngx_http_apikey_cidr_parse(copy, len, &net);

    /* the module's own IPv4 reader against libc's */

    if (len < sizeof(buf) && memchr(copy, ':', len) == NULL
        && memchr(copy, '/', len) == NULL && memchr(copy, '\0', len) == NULL)
    {
        memcpy(buf, copy, len);
        buf[len] = '\0';

        if ((inet_pton(AF_INET, buf, bytes) == 1) != (rc == 0)
            || (rc == 0 && memcmp(bytes, net.addr, 4) != 0))
        {
            abort();
        }
    }

    if (rc != 0) {
        free(copy);
        return;
    }

    if ((net.family != 4 && net.family != 6)
        || net.prefix > (net.family == 4 ? 32U : 128U))
    {
        abort();
    }

    for (bit = net.prefix; bit < 128; bit++) {
        if (net.addr[bit / 8] & (0x80 >> (bit % 8))) {
            abort();
        }
    }

    ngx_http_apikey_cidr_address(&addr, net.family, net.addr);

    if (ngx_http_apikey_cidr_match(copy, len, &addr) != 1) {
        abort();
    }

    free(copy);
}


static void
ngx_http_apikey_fuzz_parsed(const unsigned char *list, size_t len,
    const ngx_http_apikey_cidr_t *client, int rc)
{
    int                      n;
    size_t                   words;
    ngx_http_apikey_cidr_t  *nets;

    words = ngx_http_apikey_cidr_count(list, len);

    nets = malloc(words ? words * sizeof(ngx_http_apikey_cidr_t) : 1);
    if (nets == NULL) {
        return;
    }

    n = ngx_http_apikey_cidr_list(list, len, nets);

    if ((n < 0) != (rc < 0)
        || (n >= 0 && ((size_t) n != words
                       || ngx_http_apikey_cidr_find(nets, n, client) != rc
                       || ngx_http_apikey_cidr_find(nets, n, NULL) != 0)))
    {
        abort();
    }

    free(nets);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     rc, malformed, v4;
    size_t                  len, i, start;
    unsigned char          *list, mapped[16];
    ngx_http_apikey_cidr_t  client, client4;

    if (size < 17) {
        return 0;
    }

    ngx_http_apikey_cidr_address(&client, (data[0] & 1) ? 6 : 4, data + 1);

    len = size - 17;

    /* an exact-size copy: a read past the value is caught */
    list = malloc(len ? len : 1);
    if (list == NULL) {
        return 0;
    }

    memcpy(list, data + 17, len);

    malformed = (ngx_http_apikey_cidr_match(list, len, NULL) < 0);
    rc = ngx_http_apikey_cidr_match(list, len, &client);

    if (rc < -1 || rc > 1 || (rc < 0) != malformed) {
        abort();
    }

    if (ngx_http_apikey_cidr_match(list, len, NULL) > 0) {
        abort();
    }

    /* the same IPv4 address, mapped into IPv6, is matched alike */

    v4 = !(data[0] & 1);

    if (v4) {
        memset(mapped, 0, 10);
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        memcpy(mapped + 12, data + 1, 4);

        ngx_http_apikey_cidr_address(&client4, 6, mapped);

        if (client4.family != 4
            || ngx_http_apikey_cidr_match(list, len, &client4) != rc)
        {
            abort();
        }
    }

    /* the list parsed once (the module's records) answers the same */

    ngx_http_apikey_fuzz_parsed(list, len, &client, rc);

    /* every network of the list on its own */

    for (i = 0; i < len; /* void */) {
        while (i < len && list[i] == ' ') {
            i++;
        }

        start = i;

        while (i < len && list[i] != ' ') {
            i++;
        }

        if (i > start) {
            ngx_http_apikey_fuzz_network(list + start, i - start);
        }
    }

    free(list);

    return 0;
}
