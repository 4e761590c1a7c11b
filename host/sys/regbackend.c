/* regbackend.c - what every registry backend shares (see regbackend.h): result names, the
 * listener, freeing. The implementations are regbackend_local.c, regbackend_http.c and regbackend_etcd.c. */
#include "sys/regbackend.h"

const char *rb_status_name(rb_status s)
{
    switch (s) {
    case RB_OK:
        return "ok";
    case RB_NOT_FOUND:
        return "not_found";
    case RB_NOT_OWNER:
        return "not_owner";
    case RB_UNREACHABLE:
        return "unreachable";
    case RB_BAD_REQUEST:
        return "bad_request";
    case RB_LIMIT:
        return "limit";
    case RB_FORBIDDEN:
        return "forbidden";
    case RB_FAILED:
        return "failed";
    }
    return "failed";
}

void regbackend_listen(regbackend *b, rb_event_fn fn, void *ud)
{
    b->on_event = fn;
    b->on_event_ud = ud;
}

void regbackend_cache_event(regbackend *b, reg_event ev, const reg_entry *e, const reg_entry *prev)
{
    if (b && b->ops->cache_event)
        b->ops->cache_event(b, ev, e, prev);
}

void regbackend_shutdown(regbackend *b, unsigned *unfinished)
{
    if (b && b->ops->shutdown)
        b->ops->shutdown(b, unfinished);
}

void regbackend_free(regbackend *b)
{
    if (b)
        b->ops->free(b);
}
