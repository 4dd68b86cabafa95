//! A host for Router-level tests: settings with the test token, an in-memory store and a pool
//! of Lua states, so each test file does not assemble them itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wechat_lua::config::{Config, Overrides};
use wechat_lua::script::{LuaPool, RuntimeOptions, Services};
use wechat_lua::server::AppState;

use super::TOKEN;

/// The echo example, the bot most HTTP tests talk to.
pub fn echo_bot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/echo.lua")
}

/// Settings with [`TOKEN`], the data directory `data` and the extra `WECHAT_*` variables
/// `env` (as if from the environment).
pub fn test_config(data: &Path, env: &[(&str, &str)]) -> Config {
    let env = [("WECHAT_TOKEN", TOKEN)]
        .iter()
        .chain(env)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let overrides = Overrides {
        data: Some(data.to_path_buf()),
        ..Default::default()
    };
    Config::load_with_env(&overrides, &env).expect("test settings load")
}

/// The HTTP state serving `scripts` with `config`, an in-memory store and `workers` Lua
/// states, and the pool (for tests that look into it).
pub fn test_state(
    config: &Config,
    scripts: &Path,
    options: RuntimeOptions,
    workers: usize,
) -> (AppState, Arc<LuaPool>) {
    let services = Services::in_memory().expect("in-memory store");
    let pool = LuaPool::start(scripts, options, workers, services.clone()).expect("scripts load");
    let state = AppState::new(config, pool.clone(), &services).expect("state builds");
    (state, pool)
}

/// The Router of [`test_state`] with default limits and one Lua state.
pub fn test_router(config: &Config, scripts: &Path) -> axum::Router {
    let (state, _) = test_state(config, scripts, RuntimeOptions::default(), 1);
    wechat_lua::server::app(Arc::new(state))
}
