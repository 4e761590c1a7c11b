/* marshal.h - the model's objects as Lua values, for bindings and the systems layer (message
 * envelopes are in envelope.h): registry entries (decoded once per state and cached while they
 * do not change: results are shared, read-only snapshots), and texts built in a strbuf. Every function here may raise (memory) and frees
 * what it was handed either way. */
#ifndef SSSN_MARSHAL_H
#define SSSN_MARSHAL_H

#include <lua.h>

#include "core/strbuf.h"
#include "model/registry.h"

/* t[key] = value for the table on top, when value is not NULL. */
void vm_set_string_field(lua_State *L, const char *key, const char *value);

/* Pushes the decoded entry (with expires_at), from this state's cache when unchanged. The
 * cache is bounded (entries and bytes per kind, the oldest decoded going first). */
void vm_push_entry(lua_State *L, const reg_entry *e);
/* The same with the kind's cache tables at absolute indexes (fast lookups keep them as
 * upvalues): ids and vers (its first two), caches (vm_push_entry_caches); key is the index of
 * a Lua string equal to e->id, or 0 (then it is pushed and taken off again). */
void vm_push_entry_at(lua_State *L, const reg_entry *e, int key, int ids, int vers, int caches);
/* Pushes the caches table of a kind (its [1] and [2] are the ids and vers tables). */
void vm_push_entry_caches(lua_State *L, reg_kind kind);
/* A lookup of the id at index key found no live entry: the cache lets go of it. */
void vm_forget_entry(lua_State *L, int key, int vers, int caches);

/* Pushes b's text as a Lua string and frees b, also when pushing fails (it then raises); a
 * text whose appends failed is never pushed. */
void vm_push_strbuf(lua_State *L, strbuf *b);

#endif
