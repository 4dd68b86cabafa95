//! The Lua runtime: loading scripts, the `wx` bindings, dispatch and hot reload.
