/* envelope.h - a channel's messages as Lua values: the envelope of one message (content
 * decoded from its JSON text) and batches of them, built in the reader's own state. Every
 * function here may raise (memory) and frees what it was handed either way. */
#ifndef SSSN_ENVELOPE_H
#define SSSN_ENVELOPE_H

#include <lua.h>

#include "model/channel.h"

/* Pushes the envelope {id, seq, timestamp, sender_id, content = {data = ...}, metadata,
 * correlation_id, reply_to, recipient_id}. */
void vm_push_message(lua_State *L, const message *m);
/* Pushes the batch's messages as a list of envelopes and frees the batch. */
void vm_push_batch_then_free(lua_State *L, channel_batch *b);

#endif
