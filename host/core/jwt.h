/* jwt.h - HS256 JSON Web Tokens as the Python sssn JWTChannelSecurity issues them: base64url,
 * HMAC-SHA256 (OpenSSL) compared in constant time, the header and the claims read with the
 * host's own JSON reader (core/jsonread.h). Only alg HS256 is accepted: "none" and every other
 * alg are refused before the signature is looked at, and the claims are read only after the
 * signature matched. What stays allocated is only a verified token's channel list.
 *
 * Claims: sub (a string of 1..JWT_SUB_MAX bytes, UTF-8, no control characters), role ("read",
 * "write" or "admin", any case), exp (Unix time, an integer or a float; the token has expired
 * when exp <= now), nbf (optional: not valid before), jti (optional string), channels
 * (optional: an array of channel ids, or null; absent or null means every channel). A member
 * named twice (in the header or the claims) makes the token malformed. Other claims (iat,
 * iss, ...) are ignored. */
#ifndef SSSN_JWT_H
#define SSSN_JWT_H

#include <stddef.h>

#include "core/strbuf.h"

#define JWT_SUB_MAX 256        /* bytes of sub, jti and each channel id (SSSN_ID_MAX) */
#define JWT_TOKEN_MAX 8192     /* bytes of a whole token (an HTTP header value's limit) */

/* The roles, in the order of what they allow (as svc/auth.h's auth_role). */
enum { JWT_ROLE_READ = 1, JWT_ROLE_WRITE = 2, JWT_ROLE_ADMIN = 3 };

typedef struct jwt_claims {
    char sub[JWT_SUB_MAX + 1];
    int role;                  /* JWT_ROLE_* */
    double exp;
    char jti[JWT_SUB_MAX + 1]; /* "" when the token has none */
    char **channels;           /* NULL: every channel; else nchannels malloc'd ids (the caller
                                * frees them with jwt_claims_free or takes them over) */
    size_t nchannels;
} jwt_claims;

/* Verifies token[0..len) with the HMAC key secret[0..secret_len) (not empty) at Unix time now.
 * 0 with *out filled, or -1 with why (a sentence without a final stop, e.g. "the token has
 * expired", "the token's signature does not match", "alg 'none' is not accepted") and
 * nothing left to free in *out. -2 when memory ran out (why says so). */
int jwt_verify(const char *token, size_t len, const unsigned char *secret, size_t secret_len, double now,
               jwt_claims *out, char *why, size_t why_size);
void jwt_claims_free(jwt_claims *c);

/* Whether the token looks like a JWT: three non-empty base64url parts joined by two dots
 * (nothing is decoded). The static stage uses it to tell its tokens from JWTs. */
int jwt_shaped(const char *token, size_t len);

/* Writes a token signed with the secret: header {"alg":"HS256","typ":"JWT"}, claims sub, role
 * (its lower-case name), exp (as given, a float), jti (32 random hex characters from
 * RAND_bytes) and channels when channels is not NULL. 0, or -1 with why (a bad sub or role,
 * no randomness, out of memory). The token is appended to out. */
int jwt_mint(const unsigned char *secret, size_t secret_len, const char *sub, int role, double exp,
             const char *const *channels, size_t nchannels, strbuf *out, char *why, size_t why_size);

/* "read", "write", "admin" in any case -> JWT_ROLE_*, else 0. */
int jwt_role_parse(const char *s, size_t len);
const char *jwt_role_name(int role); /* "read", "write", "admin", or "?" */

/* base64url without padding (RFC 4648 section 5, as JWS uses it). encode appends to out
 * (0, or -1 out of memory); decode writes at most (len * 3) / 4 bytes to out and gives their
 * number, or -1 when s holds anything but the alphabet, padding, or is not canonical (a length
 * of 4k+1, or unused bits set in the last character). */
int jwt_b64url_encode(strbuf *out, const unsigned char *data, size_t len);
long jwt_b64url_decode(const char *s, size_t len, unsigned char *out);

/* hex (2 * nbytes lower-case characters and a NUL) of nbytes random bytes from OpenSSL's
 * RAND_bytes; 0, or -1 when the generator failed. nbytes at most 64. */
int jwt_random_hex(char *hex, size_t nbytes);

#endif
