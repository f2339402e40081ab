//! Identifiers of the things the core keeps, one type each, so a session number cannot be
//! passed where an actor is expected. JS sees them as plain numbers in the event batch.

use std::fmt;

macro_rules! id_type {
  ($(#[$doc:meta])* $name:ident($inner:ty)) => {
    $(#[$doc])*
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct $name(pub $inner);

    impl $name {
      /// The number JS knows it by.
      pub fn get(self) -> $inner {
        self.0
      }
    }

    impl fmt::Display for $name {
      fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
      }
    }

    impl serde::Serialize for $name {
      fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
      }
    }
  };
}

id_type!(
  /// One WebSocket session (a tab, a device). It outlives its socket while it waits for a resume.
  SessionId(u64)
);
id_type!(
  /// One actor in memory: a connection definition's user (or an actor class's key).
  ActorId(u64)
);
id_type!(
  /// One room instance in memory, by full name (`chat`, `conversation:123`).
  RoomId(u64)
);
id_type!(
  /// A connection definition: its index in the server's configuration.
  DefinitionId(usize)
);
id_type!(
  /// A room handler: its index in the server's configuration.
  HandlerId(usize)
);
id_type!(
  /// An upgrade request waiting for `extractMeta`.
  RequestId(u64)
);
