/* jwt.c - HS256 JWTs (see jwt.h): base64url, the header's alg, the HMAC-SHA256 signature
 * (OpenSSL, compared with CRYPTO_memcmp), then the claims, read with core/jsonread.h. The
 * order matters: nothing of the claims is read before the signature matched. */
#include "core/jwt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/json.h"
#include "core/jsonread.h"

#define SIG_LEN 32 /* SHA-256 */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int jwt_b64url_encode(strbuf *out, const unsigned char *data, size_t len)
{
    if (strbuf_reserve(out, (len + 2) / 3 * 4) < 0)
        return -1;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8 | data[i + 2];
        char q[4] = {b64url[v >> 18], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63], b64url[v & 63]};
        strbuf_append(out, q, 4);
    }
    if (len - i == 1) {
        unsigned v = (unsigned)data[i] << 16;
        char q[2] = {b64url[v >> 18], b64url[(v >> 12) & 63]};
        strbuf_append(out, q, 2);
    } else if (len - i == 2) {
        unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8;
        char q[3] = {b64url[v >> 18], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63]};
        strbuf_append(out, q, 3);
    }
    return strbuf_failed(out) ? -1 : 0;
}

long jwt_b64url_decode(const char *s, size_t len, unsigned char *out)
{
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* unused bits of the last character set: not the canonical text */
        return -1;
    return (long)o;
}

int jwt_shaped(const char *t, size_t len)
{
    size_t dots[2], nd = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '.') {
            if (nd == 2)
                return 0;
            dots[nd++] = i;
        } else if (b64url_value((unsigned char)t[i]) < 0) {
            return 0;
        }
    }
    /* the signature may be empty: an alg "none" token still is a JWT, to be refused as one */
    return nd == 2 && dots[0] > 0 && dots[1] > dots[0] + 1;
}

int jwt_role_parse(const char *s, size_t len)
{
    static const char *const names[] = {"read", "write", "admin"};
    for (int r = 0; r < 3; r++)
        if (len == strlen(names[r]) && strncasecmp(s, names[r], len) == 0)
            return r + 1;
    return 0;
}

const char *jwt_role_name(int role)
{
    return role == JWT_ROLE_READ ? "read" : role == JWT_ROLE_WRITE ? "write" : role == JWT_ROLE_ADMIN ? "admin" : "?";
}

int jwt_random_hex(char *hex, size_t nbytes)
{
    unsigned char r[64];
    if (nbytes > sizeof r || RAND_bytes(r, (int)nbytes) != 1)
        return -1;
    for (size_t i = 0; i < nbytes; i++)
        sprintf(hex + 2 * i, "%02x", r[i]);
    hex[2 * nbytes] = '\0';
    return 0;
}

/* A value quoted in a reason: at most 32 bytes, anything unprintable (or a quote) as '?'. */
static void quote_for_reason(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < 32 && o + 4 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = c < 0x20 || c >= 0x7f || c == '\'' ? '?' : (char)c;
    }
    if (n > 32 && o + 4 < size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* A string claim fit for an id: 1..JWT_SUB_MAX bytes of UTF-8 without control characters.
 * 0 with the text in buf (NUL-terminated), -1 when v is not a string, -2 when it is empty,
 * -3 too long, -4 a control character or invalid UTF-8, -5 out of memory. */
static int read_id(json_span v, strbuf *tmp, char *buf)
{
    strbuf_reset(tmp);
    if (v.len < 2 || v.p[0] != '"')
        return -1;
    if (v.len == 2)
        return -2;
    if (json_read_string(v, tmp) < 0)
        return strbuf_failed(tmp) ? -5 : -1;
    if (tmp->len == 0)
        return -2;
    if (tmp->len > JWT_SUB_MAX)
        return -3;
    for (size_t i = 0; i < tmp->len; i++)
        if ((unsigned char)tmp->data[i] < 0x20 || tmp->data[i] == 0x7f)
            return -4;
    if (json_check_utf8(tmp->data, tmp->len) != tmp->len)
        return -4;
    memcpy(buf, tmp->data, tmp->len + 1);
    return 0;
}

static void id_reason(int rc, const char *claim, char *why, size_t size)
{
    static const char *const what[] = {"", "is not a string", "is empty", "is longer than 256 bytes",
                                       "holds a control character or invalid UTF-8", "could not be read (out of memory)"};
    snprintf(why, size, "the token's %s claim %s", claim, what[-rc]);
}

/* The header: a JSON object whose alg is exactly "HS256", without crit. */
static int check_header(const unsigned char *h, size_t n, strbuf *tmp, char *why, size_t size)
{
    json_span obj, k, v, alg = {0};
    size_t pos = 0;
    int rc, have_alg = 0;
    if (json_read_value((const char *)h, n, &obj) < 0 || obj.p[0] != '{') {
        snprintf(why, size, "the token's header is not a JSON object");
        return -1;
    }
    while ((rc = json_read_next(obj, &pos, &k, &v)) == 1) {
        if (json_read_string_is(k, "alg")) {
            if (have_alg++) {
                snprintf(why, size, "the token's header names alg twice");
                return -1;
            }
            alg = v;
        } else if (json_read_string_is(k, "crit")) {
            snprintf(why, size, "the token's header has crit, which this host does not understand");
            return -1;
        }
    }
    if (rc < 0) {
        snprintf(why, size, "the token's header is not a JSON object");
        return -1;
    }
    if (!have_alg) {
        snprintf(why, size, "the token's header has no alg");
        return -1;
    }
    strbuf_reset(tmp);
    if (alg.len < 2 || alg.p[0] != '"' || json_read_string(alg, tmp) < 0) {
        snprintf(why, size, "the token's alg is not a string");
        return -1;
    }
    if (tmp->len == 5 && memcmp(tmp->data, "HS256", 5) == 0)
        return 0;
    char shown[40];
    quote_for_reason(tmp->data ? tmp->data : "", tmp->len, shown, sizeof shown);
    if (tmp->len == 4 && strncasecmp(tmp->data, "none", 4) == 0)
        snprintf(why, size, "alg '%s' is not accepted", shown);
    else
        snprintf(why, size, "alg '%s' is not accepted (only HS256)", shown);
    return -1;
}

enum { C_SUB = 1, C_ROLE = 2, C_EXP = 4, C_JTI = 8, C_CHANNELS = 16, C_NBF = 32 };

static int read_channels(json_span v, strbuf *tmp, jwt_claims *c, char *why, size_t size)
{
    if (json_read_is_null(v))
        return 0;
    if (v.p[0] != '[') {
        snprintf(why, size, "the token's channels claim is not a list of channel ids");
        return -1;
    }
    size_t pos = 0, n = 0;
    json_span item;
    int rc;
    while ((rc = json_read_next(v, &pos, NULL, &item)) == 1)
        n++;
    if (rc < 0) {
        snprintf(why, size, "the token's channels claim is not a list of channel ids");
        return -1;
    }
    c->channels = calloc(n ? n : 1, sizeof *c->channels);
    if (!c->channels) {
        snprintf(why, size, "out of memory");
        return -2;
    }
    pos = 0;
    char id[JWT_SUB_MAX + 1];
    while (json_read_next(v, &pos, NULL, &item) == 1) {
        int r = read_id(item, tmp, id);
        if (r < 0) {
            if (r == -5) {
                snprintf(why, size, "out of memory");
                return -2;
            }
            snprintf(why, size, "the token's channels claim has an entry that %s",
                     r == -1 ? "is not a string" : r == -2 ? "is empty" : r == -3 ? "is longer than 256 bytes"
                                                                           : "holds a control character or invalid UTF-8");
            return -1;
        }
        if (!(c->channels[c->nchannels] = strdup(id))) {
            snprintf(why, size, "out of memory");
            return -2;
        }
        c->nchannels++;
    }
    return 0;
}

static int read_claims(const unsigned char *p, size_t n, double now, strbuf *tmp, jwt_claims *c, char *why,
                       size_t size)
{
    json_span obj, k, v;
    size_t pos = 0;
    int rc, seen = 0;
    double nbf = 0;
    if (json_read_value((const char *)p, n, &obj) < 0 || obj.p[0] != '{') {
        snprintf(why, size, "the token's claims are not a JSON object");
        return -1;
    }
    static const struct {
        const char *name;
        int bit;
    } known[] = {{"sub", C_SUB}, {"role", C_ROLE}, {"exp", C_EXP}, {"jti", C_JTI}, {"channels", C_CHANNELS}, {"nbf", C_NBF}};
    while ((rc = json_read_next(obj, &pos, &k, &v)) == 1) {
        int bit = 0;
        const char *name = NULL;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (json_read_string_is(k, known[i].name)) {
                bit = known[i].bit;
                name = known[i].name;
            }
        if (!bit)
            continue;
        if (seen & bit) {
            snprintf(why, size, "the token's claims name %s twice", name);
            return -1;
        }
        seen |= bit;
        int r;
        switch (bit) {
        case C_SUB:
            if ((r = read_id(v, tmp, c->sub)) < 0) {
                id_reason(r, "sub", why, size);
                return r == -5 ? -2 : -1;
            }
            break;
        case C_JTI:
            if ((r = read_id(v, tmp, c->jti)) < 0 && !(r == -2)) {
                id_reason(r, "jti", why, size);
                return r == -5 ? -2 : -1;
            }
            break;
        case C_ROLE:
            strbuf_reset(tmp);
            if (v.len < 2 || v.p[0] != '"' || json_read_string(v, tmp) < 0) {
                snprintf(why, size, "the token's role claim is not a string");
                return strbuf_failed(tmp) ? -2 : -1;
            }
            if (!(c->role = jwt_role_parse(tmp->data ? tmp->data : "", tmp->len))) {
                char shown[40];
                quote_for_reason(tmp->data ? tmp->data : "", tmp->len, shown, sizeof shown);
                snprintf(why, size, "the token's role '%s' is not read, write or admin", shown);
                return -1;
            }
            break;
        case C_EXP:
        case C_NBF:
            if (json_read_number(v, bit == C_EXP ? &c->exp : &nbf) < 0 || !isfinite(bit == C_EXP ? c->exp : nbf)) {
                snprintf(why, size, "the token's %s claim is not a number (Unix time)", name);
                return -1;
            }
            break;
        case C_CHANNELS:
            if ((r = read_channels(v, tmp, c, why, size)) < 0)
                return r;
            break;
        }
    }
    if (rc < 0) {
        snprintf(why, size, "the token's claims are not a JSON object");
        return -1;
    }
    const char *missing = !(seen & C_SUB) ? "sub" : !(seen & C_ROLE) ? "role" : !(seen & C_EXP) ? "exp" : NULL;
    if (missing) {
        snprintf(why, size, "the token has no %s claim", missing);
        return -1;
    }
    if (c->exp <= now) {
        snprintf(why, size, "the token has expired");
        return -1;
    }
    if ((seen & C_NBF) && nbf > now) {
        snprintf(why, size, "the token is not valid yet (nbf)");
        return -1;
    }
    return 0;
}

int jwt_verify(const char *token, size_t len, const unsigned char *secret, size_t secret_len, double now,
               jwt_claims *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (len > JWT_TOKEN_MAX) {
        snprintf(why, why_size, "the token is longer than %d bytes", JWT_TOKEN_MAX);
        return -1;
    }
    if (!jwt_shaped(token, len)) {
        snprintf(why, why_size, "the token is not a JWT (three base64url parts)");
        return -1;
    }
    if (secret_len == 0) {
        snprintf(why, why_size, "no secret to verify the token with");
        return -1;
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    const char *hp = token, *pp = dot1 + 1, *sp = dot2 + 1;
    size_t hn = (size_t)(dot1 - token), pn = (size_t)(dot2 - pp), sn = len - (size_t)(sp - token);
    unsigned char buf[JWT_TOKEN_MAX];
    strbuf tmp = STRBUF_INIT;
    int rc = -1;

    long n = jwt_b64url_decode(hp, hn, buf);
    if (n < 0) {
        snprintf(why, why_size, "the token's header is not base64url");
        goto done;
    }
    if (check_header(buf, (size_t)n, &tmp, why, why_size) < 0)
        goto done;

    unsigned char sig[JWT_TOKEN_MAX], mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    long sl = jwt_b64url_decode(sp, sn, sig);
    if (sl < 0) {
        snprintf(why, why_size, "the token's signature is not base64url");
        goto done;
    }
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)token, (size_t)(dot2 - token), mac,
              &maclen) || maclen != SIG_LEN) {
        snprintf(why, why_size, "the token's signature could not be computed");
        goto done;
    }
    if (sl != SIG_LEN || CRYPTO_memcmp(sig, mac, SIG_LEN) != 0) {
        snprintf(why, why_size, "the token's signature does not match");
        goto done;
    }

    n = jwt_b64url_decode(pp, pn, buf);
    if (n < 0) {
        snprintf(why, why_size, "the token's claims are not base64url");
        goto done;
    }
    rc = read_claims(buf, (size_t)n, now, &tmp, out, why, why_size);
done:
    strbuf_free(&tmp);
    if (rc < 0)
        jwt_claims_free(out);
    return rc;
}

void jwt_claims_free(jwt_claims *c)
{
    for (size_t i = 0; c->channels && i < c->nchannels; i++)
        free(c->channels[i]);
    free(c->channels);
    c->channels = NULL;
    c->nchannels = 0;
}

/* 1 when s is fit for a sub or a channel id (as read_id checks a token's). */
static int good_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > JWT_SUB_MAX || json_check_utf8(s, n) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int jwt_mint(const unsigned char *secret, size_t secret_len, const char *sub, int role, double exp,
             const char *const *channels, size_t nchannels, strbuf *out, char *why, size_t why_size)
{
    if (secret_len == 0) {
        snprintf(why, why_size, "the secret is empty");
        return -1;
    }
    if (!good_id(sub)) {
        snprintf(why, why_size, "sub must be 1 to %d bytes of UTF-8 without control characters", JWT_SUB_MAX);
        return -1;
    }
    if (role < JWT_ROLE_READ || role > JWT_ROLE_ADMIN) {
        snprintf(why, why_size, "role must be read, write or admin");
        return -1;
    }
    if (!isfinite(exp)) {
        snprintf(why, why_size, "exp must be a finite Unix time");
        return -1;
    }
    for (size_t i = 0; channels && i < nchannels; i++)
        if (!good_id(channels[i])) {
            snprintf(why, why_size, "a channel id must be 1 to %d bytes of UTF-8 without control characters",
                     JWT_SUB_MAX);
            return -1;
        }
    char jti[33];
    if (jwt_random_hex(jti, 16) < 0) {
        snprintf(why, why_size, "no random bytes for the jti (RAND_bytes failed)");
        return -1;
    }
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    strbuf claims = STRBUF_INIT;
    strbuf_puts(&claims, "{\"sub\":");
    json_write_string(&claims, sub, strlen(sub));
    strbuf_printf(&claims, ",\"role\":\"%s\",\"exp\":", jwt_role_name(role));
    json_write_double(&claims, exp);
    strbuf_printf(&claims, ",\"jti\":\"%s\"", jti);
    if (channels) {
        strbuf_puts(&claims, ",\"channels\":[");
        for (size_t i = 0; i < nchannels; i++) {
            if (i)
                strbuf_putc(&claims, ',');
            json_write_string(&claims, channels[i], strlen(channels[i]));
        }
        strbuf_putc(&claims, ']');
    }
    strbuf_putc(&claims, '}');
    size_t start = out->len;
    jwt_b64url_encode(out, (const unsigned char *)header, sizeof header - 1);
    strbuf_putc(out, '.');
    if (!strbuf_failed(&claims))
        jwt_b64url_encode(out, (const unsigned char *)claims.data, claims.len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    int ok = !strbuf_failed(&claims) && !strbuf_failed(out) &&
             HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)out->data + start, out->len - start,
                  mac, &maclen) && maclen == SIG_LEN;
    strbuf_free(&claims);
    if (ok) {
        strbuf_putc(out, '.');
        jwt_b64url_encode(out, mac, maclen);
    }
    if (!ok || strbuf_failed(out)) {
        snprintf(why, why_size, "out of memory");
        return -1;
    }
    return 0;
}
