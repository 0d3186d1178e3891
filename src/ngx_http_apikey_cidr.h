
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * A key record's IP allowlist, its "cidrs" field: space-separated IPv4
 * and IPv6 networks, a bare address being a /32 or a /128.  Shared by the
 * module, which matches the client address, and the apikey tool, which
 * refuses to write a list the module would not read.  No nginx header.
 */


#ifndef _NGX_HTTP_APIKEY_CIDR_H_INCLUDED_
#define _NGX_HTTP_APIKEY_CIDR_H_INCLUDED_


#include <stddef.h>


/* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128" */
#define NGX_HTTP_APIKEY_CIDR_MAX_LEN  49


/*
 * An address, or a network: IPv4-mapped IPv6 ones are kept as IPv4.  Bytes
 * only, so that a list of them can be copied anywhere (the module's cache)
 * and read in place.
 */
typedef struct {
    unsigned char  family;        /* 4 or 6; 0: no IP address */
    unsigned char  prefix;        /* 0-32 or 0-128; 32 or 128 if an address */
    unsigned char  addr[16];      /* network order, host bits cleared */
} ngx_http_apikey_cidr_t;


/*
 * One network (or one address: a bare address) from its text: 0, or -1 if
 * it is not one.
 */
int ngx_http_apikey_cidr_parse(const unsigned char *text, size_t len,
    ngx_http_apikey_cidr_t *cidr);

/*
 * An address in binary, as a socket has it: 4 or 16 bytes; an
 * IPv4-mapped IPv6 address becomes its IPv4 address.
 */
void ngx_http_apikey_cidr_address(ngx_http_apikey_cidr_t *addr, int family,
    const unsigned char *bytes);

/*
 * A list against an address: 1 if one of its networks holds the address,
 * 0 if none does (or addr is NULL or of no family), -1 if the list is
 * malformed (then whatever the address, so that a typo never depends on
 * who asks).  An empty list, or one of spaces only, is malformed: a record
 * without a list has no "cidrs" field.
 */
int ngx_http_apikey_cidr_match(const unsigned char *list, size_t len,
    const ngx_http_apikey_cidr_t *addr);

/*
 * A list parsed once, for ngx_http_apikey_cidr_find(): the number of its
 * words (at most so many networks), then the networks into nets, which
 * returns how many there are (at least 1), or -1 if the list is malformed
 * as ngx_http_apikey_cidr_match() says.
 */
size_t ngx_http_apikey_cidr_count(const unsigned char *list, size_t len);
int ngx_http_apikey_cidr_list(const unsigned char *list, size_t len,
    ngx_http_apikey_cidr_t *nets);

/* a parsed list against an address: 1 or 0, as ngx_http_apikey_cidr_match */
int ngx_http_apikey_cidr_find(const ngx_http_apikey_cidr_t *nets, size_t n,
    const ngx_http_apikey_cidr_t *addr);


#endif /* _NGX_HTTP_APIKEY_CIDR_H_INCLUDED_ */
