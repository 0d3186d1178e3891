
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * LD_PRELOAD for tests: OpenSSL's RAND_bytes() replaced by a xorshift
 * stream seeded from $APIKEY_TEST_RAND_SEED, so that two runs of the
 * apikey tool draw the same keys and ids.  Never for anything but tests.
 */


#include <stdint.h>
#include <stdlib.h>


int RAND_bytes(unsigned char *buf, int num);


int
RAND_bytes(unsigned char *buf, int num)
{
    int              i;
    const char      *seed;

    static int       init;
    static uint64_t  s;

    if (!init) {
        seed = getenv("APIKEY_TEST_RAND_SEED");
        s = seed ? strtoull(seed, NULL, 10) : 0;
        s = s ? s : 88172645463325252ULL;
        init = 1;
    }

    for (i = 0; i < num; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        buf[i] = (unsigned char) (s >> 24);
    }

    return 1;
}
