/* message.h - a message of a channel's log: the envelope a writer supplies (message_in) and the
 * record a store keeps (message). A message is one allocation holding the struct and all its
 * strings, so building it is one malloc and freeing it one free; only a claim holder's name
 * (claimed_by) is a separate allocation, set and freed by the store that holds the message. */
#ifndef SSSN_MESSAGE_H
#define SSSN_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct message {
    uint64_t seq;           /* 1, 2, 3... in write order, never reused within a channel */
    char id[37];            /* random UUID v4 text */
    double timestamp;       /* host clock at write, Unix seconds with microseconds */
    char *sender_id;        /* NULL when unknown */
    char *data_json;        /* JSON text of content.data, never NULL */
    size_t data_len;
    char *metadata_json;    /* JSON object text, never NULL ("{}" by default) */
    char *correlation_id;   /* NULL when unset */
    char *reply_to;         /* NULL when unset */
    char *recipient_id;     /* NULL when unset */
    /* exclusive-read state (work_queue, passthrough); only the store changes it */
    char *claimed_by;       /* reader holding the claim, NULL when unclaimed */
    double claim_deadline;  /* the claim lapses when now >= claim_deadline */
    int done;               /* acknowledged (work_queue) or taken (passthrough exclusive) */
    size_t bytes;           /* its size: the one allocation, struct and strings (message_in_size) */
} message;

/* What a writer supplies. Strings are copied; NULL means unset. */
typedef struct message_in {
    const char *sender_id;
    const char *data_json;  /* required: JSON text of the data */
    size_t data_len;
    const char *metadata_json; /* NULL -> "{}" */
    const char *correlation_id;
    const char *reply_to;
    const char *recipient_id;
    const char *id;         /* NULL -> a new UUID; given for direct writes of whole envelopes */
} message_in;

/* Builds a message from `in` with the given timestamp, seq 0 and no claim. Its id is in->id
 * cut to 36 characters, or empty when in->id is NULL or empty (the caller writes one in).
 * data_len 0 means data_json is NUL-terminated; NULL data_json is "null". NULL when out of
 * memory. The caller owns the result until a store's append takes it. */
message *message_new(const message_in *in, double timestamp);

/* The bytes message_new would allocate for `in`: what a message costs a channel's byte budget.
 * Computed without allocating, so a write can be refused before it builds anything. */
size_t message_in_size(const message_in *in);
/* The size of what the writer sent: its data's JSON, its metadata's when given, and the routing
 * strings it set (correlation_id, reply_to, recipient_id); not the sender (the host names it),
 * the id or the record around them. What a limit on a message's size (--max-message-size)
 * bounds, so a PUT of N bytes of JSON is a message of N bytes. */
size_t message_in_content_size(const message_in *in);

/* Frees a message and its claim holder's name; NULL is allowed. */
void message_free(message *m);

#endif
