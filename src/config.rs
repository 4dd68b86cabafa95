//! Settings from `wechat-lua.toml`, the environment and command-line flags.
