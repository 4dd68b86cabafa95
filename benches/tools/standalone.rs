//! What the benchmark's stand-in servers (the ceiling and the floor) share: their one
//! argument, `--listen ADDR`, and serving their router with axum on a multi-threaded tokio
//! runtime, the stack `wechat-lua serve` answers on.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;

/// Serves `router` on the address of `--listen` until the process is stopped; `name` and
/// `usage` are for its messages.
pub fn serve(name: &str, usage: &str, router: Router) -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => match addr.parse() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("{name}: --listen {addr}: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => {
            eprintln!("usage: {usage}");
            return ExitCode::FAILURE;
        }
    };
    let served = tokio::runtime::Runtime::new().and_then(|runtime| {
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            eprintln!(
                "{name} listening on http://{}/wechat",
                listener.local_addr()?
            );
            axum::serve(listener, router).await
        })
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
