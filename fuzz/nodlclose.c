
/*
 * Copyright (C) the ngx_http_apikey_module authors
 *
 * Preloaded into nginx under valgrind: modules stay mapped at exit, so
 * that valgrind can name their functions in its reports, and memory a
 * module holds in a static pointer until exit is "still reachable", not
 * "definitely lost".  A real leak (a pointer lost while running) is still
 * reported as lost.
 */


int dlclose(void *handle);


int
dlclose(void *handle)
{
    (void) handle;

    return 0;
}
