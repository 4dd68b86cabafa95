//! Persistent state shared by the host: embedded default and Redis.
