/**
 * The batch format of events from the native core (mirrors `src/dispatch.rs`). A batch is one
 * JSON array; each entry is an array whose first element is its tag.
 *
 * The tag numbers are the Rust side's: they never change here alone. This file is the one place
 * they are written in TypeScript, each with its entry's shape, so a test can compare them with
 * the Rust enum. `events.ts` routes the entries.
 */

export enum Tag {
  /** `[0, requestId, endpoint, url, remoteAddress, headers]` */
  Upgrade = 0,
  /** `[1, sessionId, actorId, created, endpoint, key, meta]` */
  Open = 1,
  /** `[2, sessionId, type, data]` */
  Message = 2,
  /** `[3, sessionId, callId, event, data]` */
  Call = 3,
  /** `[4, sessionId, code, reason]` */
  Close = 4,
  /** `[5, actorId]` */
  Evict = 5,
  /** `[6, roomId, created, handler, name, userId, metadata]` */
  RoomJoin = 6,
  /** `[7, roomId, userId]` */
  RoomLeave = 7,
  /** `[8, roomId]` */
  RoomEvict = 8,
  /** `[9]` */
  Shutdown = 9,
  /** `[10, actorId, endpoint, key, [[sessionId, meta], ...]]` */
  Wake = 10,
  /** `[11, actorId]` */
  Hibernate = 11,
  /** `[12, actorId]` */
  Destroyed = 12,
  /** `[13, roomId]` */
  RoomHibernate = 13,
  /** `[14, roomId]` */
  RoomDestroyed = 14,
  /** `[15, actorId, endpoint, key, scheduleId, event, data]` */
  Scheduled = 15,
  /** `[16, level, message]`: the native core reports something to the application's log. */
  Log = 16,
  /** `[17, sessionId, text]`: a raw endpoint's text message. */
  RawText = 17,
  /** `[18, sessionId, base64]`: a raw endpoint's binary message, its bytes in base64. */
  RawBinary = 18,
  /** `[19, requestId, members]` or `[19, requestId, null, code, message]`: a `fetchMembers` answer. */
  RoomMembers = 19,
}

export type UpgradeEntry = [Tag.Upgrade, number, number, string, string, Record<string, string>];
export type OpenEntry = [Tag.Open, number, number, 0 | 1, number, string, Record<string, unknown>];
export type MessageEntry = [Tag.Message, number, string, unknown];
export type CallEntry = [Tag.Call, number, number, string, unknown];
export type CloseEntry = [Tag.Close, number, number, string];
export type EvictEntry = [Tag.Evict, number];
export type RoomJoinEntry = [Tag.RoomJoin, number, 0 | 1, number, string, string, Record<string, unknown>];
export type RoomLeaveEntry = [Tag.RoomLeave, number, string];
export type RoomEvictEntry = [Tag.RoomEvict, number];
export type ShutdownEntry = [Tag.Shutdown];
export type WakeEntry = [Tag.Wake, number, number, string, Array<[number, Record<string, unknown>]>];
export type HibernateEntry = [Tag.Hibernate, number];
export type DestroyedEntry = [Tag.Destroyed, number];
export type RoomHibernateEntry = [Tag.RoomHibernate, number];
export type RoomDestroyedEntry = [Tag.RoomDestroyed, number];
export type ScheduledEntry = [Tag.Scheduled, number, number, string, string, string, unknown];
export type LogEntry = [Tag.Log, "warn" | "error", string];
export type RawTextEntry = [Tag.RawText, number, string];
export type RawBinaryEntry = [Tag.RawBinary, number, string];
export type RoomMembersEntry =
  | [Tag.RoomMembers, number, Array<{ userId: string; joinedAt: number; metadata: Record<string, unknown> }>]
  | [Tag.RoomMembers, number, null, string, string];

export type Entry =
  | UpgradeEntry
  | OpenEntry
  | MessageEntry
  | CallEntry
  | CloseEntry
  | EvictEntry
  | RoomJoinEntry
  | RoomLeaveEntry
  | RoomEvictEntry
  | ShutdownEntry
  | WakeEntry
  | HibernateEntry
  | DestroyedEntry
  | RoomHibernateEntry
  | RoomDestroyedEntry
  | ScheduledEntry
  | LogEntry
  | RawTextEntry
  | RawBinaryEntry
  | RoomMembersEntry;
