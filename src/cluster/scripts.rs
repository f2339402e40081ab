//! The Lua scripts nodes run in Redis: each is one atomic step that would otherwise race
//! between nodes.

/// Publishes a room message with the room's next offset and its epoch.
///
/// `KEYS[1]`: the room's log key; `ARGV[1]`: the room's channel; `ARGV[2]`: the origin node as a
/// JSON string; `ARGV[3]`: the frame; `ARGV[4]`: the epoch to start with when the log is new.
/// A log that disappears (Redis lost its data) starts again with a new epoch, so subscribers
/// know their offsets no longer mean anything. Returns the offset.
pub const PUBLISH_ROOM: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
redis.call('PUBLISH', ARGV[1], '[' .. ARGV[2] .. ',' .. offset .. ',"' .. epoch .. '"]\n' .. ARGV[3])
return offset
"#;

/// Extends a node's lease if this process still holds it.
///
/// `KEYS[1]`: the node's lease key; `ARGV[1]`: this process's nonce; `ARGV[2]`: the lease in ms.
/// Returns 1 when extended, 0 when the lease is gone or held by another process.
pub const RENEW_LEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Gives a node's lease back if this process holds it (clean shutdown).
///
/// `KEYS[1]`: the node's lease key; `ARGV[1]`: this process's nonce.
pub const RELEASE_LEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Claims an actor for this node unless a live node holds it: the directory entry names the
/// owner and carries a fencing token that grows with every change of owner.
///
/// `KEYS[1]`: the actor's directory key; `KEYS[2]`, `KEYS[3]`: its stored state and room list;
/// `ARGV[1]`: this node; `ARGV[2]`: the prefix of node lease keys. Returns
/// `{owner, token, state, list}`: the state and room list (`false` when not stored) are the
/// records the new owner starts from when the owner is this node.
pub const CLAIM_ACTOR: &str = r#"
local owner = redis.call('HGET', KEYS[1], 'owner')
local token
if owner and owner ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. owner) == 1 then
  return {owner, tonumber(redis.call('HGET', KEYS[1], 'token')), false, false}
end
if owner == ARGV[1] then
  token = tonumber(redis.call('HGET', KEYS[1], 'token'))
else
  token = redis.call('HINCRBY', KEYS[1], 'token', 1)
  redis.call('HSET', KEYS[1], 'owner', ARGV[1])
end
return {ARGV[1], token, redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}
"#;

/// Gives an actor up (it left memory), keeping its token so the next owner's is higher.
///
/// `KEYS[1]`: the actor's directory key; `ARGV[1]`: this node.
pub const RELEASE_ACTOR: &str = r#"
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'owner')
end
return 0
"#;

/// Writes one record of an actor if this node still owns it with the token it claimed it with;
/// otherwise refuses (the node was *fenced*: another node took the actor over).
///
/// `KEYS[1]`: the record; `KEYS[2]`: the actor's directory key; `ARGV[1]`: this node;
/// `ARGV[2]`: its token; `ARGV[3]`: `set` or `del`; `ARGV[4]`: the value; `ARGV[5]`: `1` to give
/// the claim up once written (a destroyed actor).
pub const WRITE_FENCED: &str = r#"
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then
  return redis.error_reply('FENCED the actor is owned by another node now')
end
if ARGV[3] == 'del' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[4])
end
if ARGV[5] == '1' then
  redis.call('HDEL', KEYS[2], 'owner')
end
return 1
"#;

/// Writes or deletes one schedule of an actor under its claim (as [`WRITE_FENCED`]), keeping
/// the actor's due-ordered set and the cluster's alarm (the actor's soonest due time) in step.
///
/// `KEYS[1]`: the schedule's record; `KEYS[2]`: the actor's directory key; `KEYS[3]`: the
/// actor's schedules (sorted set: id by due time); `KEYS[4]`: the alarms (sorted set: actor
/// directory key by its soonest due time); `ARGV[1]`: this node; `ARGV[2]`: its token;
/// `ARGV[3]`: `set` or `del`; `ARGV[4]`: the value; `ARGV[5]`: the schedule id; `ARGV[6]`: its
/// due time (ms).
pub const WRITE_SCHEDULE_FENCED: &str = r#"
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then
  return redis.error_reply('FENCED the actor is owned by another node now')
end
if ARGV[3] == 'del' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[5])
else
  redis.call('SET', KEYS[1], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
end
local soonest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if soonest[2] then
  redis.call('ZADD', KEYS[4], soonest[2], KEYS[2])
else
  redis.call('ZREM', KEYS[4], KEYS[2])
end
return 1
"#;

/// Takes a due schedule of an actor this node holds, so it fires once: removed under the claim,
/// the alarm moved to the actor's next due time.
///
/// `KEYS` as [`WRITE_SCHEDULE_FENCED`]; `ARGV[1]`: this node; `ARGV[2]`: its token; `ARGV[3]`:
/// the schedule id. Returns 1 when taken, 0 when it was already gone (cancelled, or fired), and
/// an error when the node no longer holds the actor.
pub const TAKE_SCHEDULE: &str = r#"
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then
  return redis.error_reply('FENCED the actor is owned by another node now')
end
local taken = redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[1])
local soonest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if soonest[2] then
  redis.call('ZADD', KEYS[4], soonest[2], KEYS[2])
else
  redis.call('ZREM', KEYS[4], KEYS[2])
end
return taken
"#;
