/* api.h - the host's HTTP API as a service: an http_server whose requests run as tasks in
 * the API's own Lua state, routed by lua/sssn/api.lua, so long-polls wait without holding
 * the loop. Starting it binds the address and sets the host's endpoint (the URL other hosts
 * reach it at) and h->http_stats. */
#ifndef SSSN_API_H
#define SSSN_API_H

#include "svc/auth.h"
#include "svc/service.h"
#include "sys/host.h"

typedef struct api_options {
    const char *addr;      /* --listen's ADDR as given: it names the host in the URL */
    const char *numeric;   /* the address it resolved to, to bind */
    int port;              /* 0: the kernel picks one */
    int loopback;          /* the address is a loopback one (no warning) */
    int any;               /* 0.0.0.0 or ::: advertise the host name instead */
    const char *advertise; /* --advertise URL, or NULL */
    auth_stage *auth;      /* the authentication stage, NULL for the open one; the API owns it
                            * from api_service_new on (also when that fails) */
    const char *tls_cert;  /* --tls-cert and --tls-key: serve HTTPS (both, or neither) */
    const char *tls_key;
    double request_timeout;        /* --request-timeout (0: the default, 10 s) */
    unsigned max_connections;      /* --max-connections (0: the default, 1024) */
    unsigned max_per_address;      /* --max-connections-per-address (0: the default, 128) */
    const char *web_dir;           /* the dashboard's files (svc/webui.h), or NULL: no page */
} api_options;

/* The options are copied; NULL when out of memory. */
service *api_service_new(host *h, const api_options *opt);

#endif
