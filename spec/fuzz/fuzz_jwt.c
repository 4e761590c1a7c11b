/* fuzz_jwt.c - libFuzzer harness for host/core/jwt.c. The first byte picks a mode: the rest is
 * taken (0) as a whole token, or (1) as header text and (2) as claims text that the harness
 * signs with the right key, so the fuzzer reaches the header and claims readers behind the
 * signature. Any input must be accepted or refused with a reason, never crash or leak; an
 * accepted token must have claims within their bounds, and a token minted from what was
 * accepted must verify to the same claims.
 * `make fuzz FUZZ_SECONDS=60` builds and runs it next to fuzz_json (needs clang). */
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char KEY[] = "fuzz-secret";
#define KEY_LEN (sizeof KEY - 1)
#define NOW 1764100000.0

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_jwt: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void sign(strbuf *b, const char *header, size_t hn, const char *claims, size_t cn)
{
    jwt_b64url_encode(b, (const unsigned char *)header, hn);
    strbuf_putc(b, '.');
    jwt_b64url_encode(b, (const unsigned char *)claims, cn);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (b->data)
        HMAC(EVP_sha256(), KEY, (int)KEY_LEN, (const unsigned char *)b->data, b->len, mac, &n);
    strbuf_putc(b, '.');
    jwt_b64url_encode(b, mac, n);
}

static void check_accepted(const jwt_claims *c)
{
    size_t n = strlen(c->sub);
    if (n == 0 || n > JWT_SUB_MAX)
        die("accepted a sub out of bounds", c->sub);
    if (c->role < JWT_ROLE_READ || c->role > JWT_ROLE_ADMIN)
        die("accepted a bad role", NULL);
    if (!(c->exp > NOW) || !isfinite(c->exp))
        die("accepted an expired token", NULL);
    for (size_t i = 0; c->channels && i < c->nchannels; i++)
        if (!c->channels[i][0] || strlen(c->channels[i]) > JWT_SUB_MAX)
            die("accepted a bad channel id", c->channels[i]);
    /* minted again, it reads back the same */
    strbuf t = STRBUF_INIT;
    char why[256];
    if (jwt_mint(KEY, KEY_LEN, c->sub, c->role, c->exp, (const char *const *)c->channels, c->nchannels, &t, why,
                 sizeof why) < 0)
        die("cannot mint what was accepted", why);
    jwt_claims d;
    if (jwt_verify(t.data, t.len, KEY, KEY_LEN, NOW, &d, why, sizeof why) < 0)
        die("a minted token is refused", why);
    if (strcmp(d.sub, c->sub) || d.role != c->role || d.exp != c->exp || (d.channels == NULL) != (c->channels == NULL) ||
        d.nchannels != c->nchannels)
        die("a minted token reads back different claims", NULL);
    for (size_t i = 0; i < d.nchannels; i++)
        if (strcmp(d.channels[i], c->channels[i]))
            die("a minted token reads back different channels", NULL);
    jwt_claims_free(&d);
    strbuf_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned mode = data[0] % 3;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    strbuf t = STRBUF_INIT;
    static const char hs256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const char claims[] = "{\"sub\":\"s\",\"role\":\"read\",\"exp\":1864100000}";
    if (mode == 0)
        strbuf_append(&t, rest, n);
    else if (mode == 1)
        sign(&t, rest, n, claims, sizeof claims - 1);
    else
        sign(&t, hs256, sizeof hs256 - 1, rest, n);
    if (strbuf_failed(&t) || !t.data) {
        strbuf_free(&t);
        return 0;
    }
    jwt_claims c;
    char why[256] = "";
    int rc = jwt_verify(t.data, t.len, KEY, KEY_LEN, NOW, &c, why, sizeof why);
    if (rc == 0) {
        check_accepted(&c);
        jwt_claims_free(&c);
    } else {
        if (!why[0])
            die("refused without a reason", NULL);
        if (c.channels)
            die("refused but left channels", why);
    }
    strbuf_free(&t);
    return 0;
}
