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
