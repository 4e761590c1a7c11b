/* test_jwt.c - core/jwt.c: base64url both ways, HS256 tokens minted and verified, and every
 * way a token is refused (tampered parts, alg none and HS512, expiry with integer and float
 * exp, missing and bad claims, malformed base64url), each with its reason. Tokens other than
 * minted ones are built here from header and claims text, signed with OpenSSL's HMAC. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/jwt.h"

static const unsigned char SECRET[] = "correct horse battery staple";
#define SECRET_LEN (sizeof SECRET - 1)
#define NOW 1764100000.0

static const char HS256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* header.claims.signature with the given texts, signed with key (HS256 over the first two). */
static char *make(const char *header, const char *claims, const unsigned char *key, size_t keylen)
{
    strbuf b = STRBUF_INIT;
    jwt_b64url_encode(&b, (const unsigned char *)header, strlen(header));
    strbuf_putc(&b, '.');
    jwt_b64url_encode(&b, (const unsigned char *)claims, strlen(claims));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)b.data, b.len, mac, &n);
    strbuf_putc(&b, '.');
    jwt_b64url_encode(&b, mac, n);
    return strbuf_steal(&b, NULL);
}

static char *signed_claims(const char *claims) { return make(HS256, claims, SECRET, SECRET_LEN); }

/* Verifies t; returns the rc and leaves the reason in why. */
static int verify(const char *t, jwt_claims *c, char *why)
{
    return jwt_verify(t, strlen(t), SECRET, SECRET_LEN, NOW, c, why, 256);
}

/* t must be refused with a reason containing want. */
static int refused_with(const char *t, const char *want)
{
    jwt_claims c;
    char why[256] = "";
    int rc = verify(t, &c, why);
    if (rc == 0 || !strstr(why, want)) {
        fprintf(stderr, "  token %s: rc %d, reason '%s', wanted '%s'\n", t, rc, why, want);
        if (rc == 0)
            jwt_claims_free(&c);
        return 0;
    }
    return c.channels == NULL;
}

static void test_base64url(void)
{
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        strbuf b = STRBUF_INIT;
        CHECK(jwt_b64url_encode(&b, (const unsigned char *)plain[i], strlen(plain[i])) == 0);
        CHECK(strcmp(b.data ? b.data : "", coded[i]) == 0);
        unsigned char out[16];
        CHECK(jwt_b64url_decode(coded[i], strlen(coded[i]), out) == (long)strlen(plain[i]));
        CHECK(memcmp(out, plain[i], strlen(plain[i])) == 0);
        strbuf_free(&b);
    }
    unsigned char bin[] = {0xfb, 0xff, 0xfe}, out[8];
    strbuf b = STRBUF_INIT;
    jwt_b64url_encode(&b, bin, 3);
    CHECK(strcmp(b.data, "-__-") == 0); /* the url alphabet, not + and / */
    strbuf_free(&b);
    CHECK(jwt_b64url_decode("Zm9v=", 5, out) < 0);  /* padding */
    CHECK(jwt_b64url_decode("Zm+v", 4, out) < 0);   /* the other alphabet */
    CHECK(jwt_b64url_decode("Zm9vY", 5, out) < 0);  /* 4k+1 characters */
    CHECK(jwt_b64url_decode("Zh", 2, out) < 0);     /* unused bits set: not canonical */
}

static void test_mint_and_verify(void)
{
    strbuf t = STRBUF_INIT;
    char why[256] = "";
    const char *chans[] = {"feed", "jobs"};
    CHECK(jwt_mint(SECRET, SECRET_LEN, "sensor-7", JWT_ROLE_WRITE, NOW + 60.5, chans, 2, &t, why, sizeof why) == 0);
    CHECK(jwt_shaped(t.data, t.len));
    CHECK(strncmp(t.data, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0);
    jwt_claims c;
    CHECK(verify(t.data, &c, why) == 0);
    CHECK(strcmp(c.sub, "sensor-7") == 0);
    CHECK(c.role == JWT_ROLE_WRITE);
    CHECK(c.exp == NOW + 60.5);
    CHECK(strlen(c.jti) == 32 && strspn(c.jti, "0123456789abcdef") == 32);
    CHECK(c.nchannels == 2 && c.channels && strcmp(c.channels[0], "feed") == 0 && strcmp(c.channels[1], "jobs") == 0);
    jwt_claims_free(&c);
    CHECK(c.channels == NULL);
    /* another secret: the signature does not match */
    CHECK(jwt_verify(t.data, t.len, (const unsigned char *)"other", 5, NOW, &c, why, sizeof why) < 0);
    CHECK(strcmp(why, "the token's signature does not match") == 0);
    /* two mints differ in their jti */
    strbuf u = STRBUF_INIT;
    CHECK(jwt_mint(SECRET, SECRET_LEN, "sensor-7", JWT_ROLE_WRITE, NOW + 60.5, chans, 2, &u, why, sizeof why) == 0);
    CHECK(strcmp(t.data, u.data) != 0);
    strbuf_free(&t);
    strbuf_free(&u);
    /* without channels: every channel */
    CHECK(jwt_mint(SECRET, SECRET_LEN, "a", JWT_ROLE_ADMIN, NOW + 1, NULL, 0, &t, why, sizeof why) == 0);
    CHECK(verify(t.data, &c, why) == 0 && c.channels == NULL && c.role == JWT_ROLE_ADMIN);
    strbuf_free(&t);
    CHECK(jwt_mint(SECRET, SECRET_LEN, "", JWT_ROLE_READ, NOW + 1, NULL, 0, &t, why, sizeof why) < 0);
    CHECK(jwt_mint(SECRET, SECRET_LEN, "a", 0, NOW + 1, NULL, 0, &t, why, sizeof why) < 0);
    CHECK(jwt_mint(SECRET, 0, "a", 1, NOW + 1, NULL, 0, &t, why, sizeof why) < 0);
    strbuf_free(&t);
}

static void test_python_shaped_claims(void)
{
    /* as Python's json.dumps writes them: spaces, an integer exp, role in capitals */
    char *t = signed_claims("{\"sub\": \"svc\", \"role\": \"READ\", \"exp\": 1764100100, \"jti\": \"ab12\", "
                            "\"iat\": 1764100000, \"channels\": null}");
    jwt_claims c;
    char why[256];
    CHECK(verify(t, &c, why) == 0);
    CHECK(c.role == JWT_ROLE_READ && c.channels == NULL && strcmp(c.jti, "ab12") == 0);
    free(t);
    t = signed_claims("{\"sub\":\"s\\u00e9\",\"role\":\"Admin\",\"exp\":1764100000.001,\"channels\":[]}");
    CHECK(verify(t, &c, why) == 0);
    CHECK(strcmp(c.sub, "s\xc3\xa9") == 0 && c.role == JWT_ROLE_ADMIN);
    CHECK(c.channels != NULL && c.nchannels == 0); /* an empty list: no channel at all */
    jwt_claims_free(&c);
    free(t);
}

static void test_tampered(void)
{
    strbuf t = STRBUF_INIT;
    char why[256];
    CHECK(jwt_mint(SECRET, SECRET_LEN, "reader", JWT_ROLE_READ, NOW + 60, NULL, 0, &t, why, sizeof why) == 0);
    char *dot1 = strchr(t.data, '.'), *dot2 = strrchr(t.data, '.');
    /* the payload swapped for one granting admin, the signature kept */
    strbuf forged = STRBUF_INIT;
    strbuf_append(&forged, t.data, (size_t)(dot1 + 1 - t.data));
    const char *admin = "{\"sub\":\"reader\",\"role\":\"admin\",\"exp\":1764100060}";
    jwt_b64url_encode(&forged, (const unsigned char *)admin, strlen(admin));
    strbuf_puts(&forged, dot2);
    CHECK(refused_with(forged.data, "the token's signature does not match"));
    /* one character of the payload changed */
    char *copy = strdup(t.data);
    copy[(dot1 - t.data) + 5] ^= 1;
    CHECK(refused_with(copy, "signature does not match") || refused_with(copy, "not base64url"));
    free(copy);
    /* one character of the signature changed */
    copy = strdup(t.data);
    copy[(dot2 - t.data) + 3] = copy[(dot2 - t.data) + 3] == 'A' ? 'B' : 'A';
    CHECK(refused_with(copy, "the token's signature does not match"));
    free(copy);
    /* the signature cut short, and dropped */
    copy = strdup(t.data);
    copy[strlen(copy) - 3] = '\0'; /* 40 characters: canonical, 30 bytes */
    CHECK(refused_with(copy, "the token's signature does not match"));
    copy[(dot2 - t.data) + 1] = '\0';
    CHECK(refused_with(copy, "the token's signature does not match"));
    free(copy);
    strbuf_free(&forged);
    strbuf_free(&t);
}

static void test_alg(void)
{
    const char *claims = "{\"sub\":\"x\",\"role\":\"admin\",\"exp\":1864100000}";
    /* alg none with no signature, and with a valid HMAC anyway */
    strbuf b = STRBUF_INIT;
    const char *none = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    jwt_b64url_encode(&b, (const unsigned char *)none, strlen(none));
    strbuf_putc(&b, '.');
    jwt_b64url_encode(&b, (const unsigned char *)claims, strlen(claims));
    strbuf_putc(&b, '.');
    CHECK(refused_with(b.data, "alg 'none' is not accepted"));
    strbuf_free(&b);
    char *t = make(none, claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "alg 'none' is not accepted"));
    free(t);
    t = make("{\"alg\":\"NONE\"}", claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "alg 'NONE' is not accepted"));
    free(t);
    t = make("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "alg 'HS512' is not accepted (only HS256)"));
    free(t);
    t = make("{\"alg\":\"hs256\"}", claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "alg 'hs256' is not accepted"));
    free(t);
    t = make("{\"typ\":\"JWT\"}", claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "the token's header has no alg"));
    free(t);
    t = make("{\"alg\":\"HS256\",\"alg\":\"none\"}", claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "names alg twice"));
    free(t);
    t = make("{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "crit"));
    free(t);
    t = make("[\"HS256\"]", claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "the token's header is not a JSON object"));
    free(t);
    t = make("{\"alg\":256}", claims, SECRET, SECRET_LEN);
    CHECK(refused_with(t, "the token's alg is not a string"));
    free(t);
    /* the escaped spelling of the header's names is the same name */
    t = make("{\"\\u0061lg\":\"HS256\"}", claims, SECRET, SECRET_LEN);
    jwt_claims c;
    char why[256];
    CHECK(verify(t, &c, why) == 0);
    free(t);
}

static void test_expiry(void)
{
    char *t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1764099999}");
    CHECK(refused_with(t, "the token has expired"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1764100000}"); /* exp == now: expired */
    CHECK(refused_with(t, "the token has expired"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1764099999.999}");
    CHECK(refused_with(t, "the token has expired"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1.7641e9}");
    CHECK(refused_with(t, "the token has expired"));
    free(t);
    jwt_claims c;
    char why[256];
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1764100000.5}");
    CHECK(verify(t, &c, why) == 0);
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":\"1864100000\"}");
    CHECK(refused_with(t, "the token's exp claim is not a number"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1e400}");
    CHECK(refused_with(t, "the token's exp claim is not a number"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\"}");
    CHECK(refused_with(t, "the token has no exp claim"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1864100000,\"nbf\":1764100100}");
    CHECK(refused_with(t, "not valid yet"));
    free(t);
}

static void test_claims(void)
{
    char *t = signed_claims("{\"role\":\"read\",\"exp\":1864100000}");
    CHECK(refused_with(t, "the token has no sub claim"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"exp\":1864100000}");
    CHECK(refused_with(t, "the token has no role claim"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"owner\",\"exp\":1864100000}");
    CHECK(refused_with(t, "the token's role 'owner' is not read, write or admin"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":3,\"exp\":1864100000}");
    CHECK(refused_with(t, "the token's role claim is not a string"));
    free(t);
    t = signed_claims("{\"sub\":\"\",\"role\":\"read\",\"exp\":1864100000}");
    CHECK(refused_with(t, "the token's sub claim is empty"));
    free(t);
    t = signed_claims("{\"sub\":42,\"role\":\"read\",\"exp\":1864100000}");
    CHECK(refused_with(t, "the token's sub claim is not a string"));
    free(t);
    t = signed_claims("{\"sub\":\"a\\u0000b\",\"role\":\"read\",\"exp\":1864100000}");
    CHECK(refused_with(t, "control character"));
    free(t);
    char claims[1024];
    char longsub[258];
    memset(longsub, 'a', 257);
    longsub[257] = '\0';
    snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"role\":\"read\",\"exp\":1864100000}", longsub);
    t = signed_claims(claims);
    CHECK(refused_with(t, "longer than 256 bytes"));
    free(t);
    longsub[256] = '\0'; /* 256 bytes: fine */
    snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"role\":\"read\",\"exp\":1864100000}", longsub);
    t = signed_claims(claims);
    jwt_claims c;
    char why[256];
    CHECK(verify(t, &c, why) == 0 && strlen(c.sub) == 256);
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"sub\":\"admin\",\"role\":\"read\",\"exp\":1864100000}");
    CHECK(refused_with(t, "the token's claims name sub twice"));
    free(t);
    t = signed_claims("[1,2]");
    CHECK(refused_with(t, "the token's claims are not a JSON object"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1864100000,}");
    CHECK(refused_with(t, "the token's claims are not a JSON object"));
    free(t);
}

static void test_channels(void)
{
    jwt_claims c;
    char why[256];
    char *t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1864100000,\"channels\":[\"a\",\"b\\/c\",\"d\"]}");
    CHECK(verify(t, &c, why) == 0);
    CHECK(c.nchannels == 3 && strcmp(c.channels[1], "b/c") == 0 && strcmp(c.channels[2], "d") == 0);
    jwt_claims_free(&c);
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1864100000,\"channels\":\"a\"}");
    CHECK(refused_with(t, "the token's channels claim is not a list of channel ids"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1864100000,\"channels\":[\"a\",7]}");
    CHECK(refused_with(t, "channels claim has an entry that is not a string"));
    free(t);
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"exp\":1864100000,\"channels\":[\"a\",\"\"]}");
    CHECK(refused_with(t, "channels claim has an entry that is empty"));
    free(t);
    /* refused after the list was read: nothing leaks (the sanitizer build checks) */
    t = signed_claims("{\"sub\":\"x\",\"role\":\"read\",\"channels\":[\"a\",\"b\"],\"exp\":1}");
    CHECK(refused_with(t, "the token has expired"));
    free(t);
}

static void test_malformed(void)
{
    CHECK(refused_with("", "the token is not a JWT (three base64url parts)"));
    CHECK(refused_with("abc", "not a JWT"));
    CHECK(refused_with("a.b", "not a JWT"));
    CHECK(refused_with("a.b.c.d", "not a JWT"));
    CHECK(refused_with("a..c", "not a JWT"));
    CHECK(refused_with(".b.c", "not a JWT"));
    CHECK(refused_with("eyJh bGc.eyJ.abc", "not a JWT"));
    CHECK(refused_with("eyJhbGc=.eyJ.abc", "not a JWT"));
    CHECK(refused_with("e.eyJ.abc", "the token's header is not base64url"));
    CHECK(refused_with("eyJhbGciOiJIUzI1NiJ9.eyJ.abc", "the token's signature does not match"));
    CHECK(refused_with("eyJhbGciOiJIUzI1NiJ9.eyJ.a", "the token's signature is not base64url"));
    CHECK(refused_with("bm90IGpzb24.eyJ.abc", "the token's header is not a JSON object"));
    char *t = signed_claims("{\"sub\":\"x\"");
    CHECK(refused_with(t, "the token's claims are not a JSON object"));
    free(t);
    /* a signed payload that is not canonical base64url */
    t = make(HS256, "{}", SECRET, SECRET_LEN);
    char *dot1 = strchr(t, '.');
    CHECK(dot1[1] == 'e' && dot1[2] == '3' && dot1[3] == '0'); /* "{}" is e30 */
    free(t);
    char big[JWT_TOKEN_MAX + 10];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[10] = '.';
    big[20] = '.';
    CHECK(refused_with(big, "longer than 8192 bytes"));
    CHECK(jwt_shaped("a.b.", 4));
    CHECK(!jwt_shaped("0123abcdef", 10));
}

static void test_roles(void)
{
    CHECK(jwt_role_parse("read", 4) == JWT_ROLE_READ);
    CHECK(jwt_role_parse("WRITE", 5) == JWT_ROLE_WRITE);
    CHECK(jwt_role_parse("aDmIn", 5) == JWT_ROLE_ADMIN);
    CHECK(jwt_role_parse("reader", 6) == 0);
    CHECK(jwt_role_parse("rea", 3) == 0);
    CHECK(strcmp(jwt_role_name(JWT_ROLE_WRITE), "write") == 0);
    char hex[65];
    CHECK(jwt_random_hex(hex, 32) == 0 && strlen(hex) == 64);
}

int main(void)
{
    RUN(test_base64url);
    RUN(test_mint_and_verify);
    RUN(test_python_shaped_claims);
    RUN(test_tampered);
    RUN(test_alg);
    RUN(test_expiry);
    RUN(test_claims);
    RUN(test_channels);
    RUN(test_malformed);
    RUN(test_roles);
    return check_report();
}
