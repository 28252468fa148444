//! What a Rust router writes to run the janitor inside its own worker
//! processor: build it from a config, start it with the other workers, stop
//! it at shutdown. Here shutdown is stdin closing or Ctrl-C:
//! `DOCKER_HOST=unix:///var/run/docker.sock cargo run -p cascade-embed --example embed`.

use std::time::Duration;

use cascade_embed::{DEFAULT_SOCKET, EngineAddress, Janitor, JanitorConfig};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_SOCKET.to_string());
    let engine: EngineAddress = host.parse()?; // refuses a bad address or credentials
    // Every other setting keeps its default; /healthz follows the interval.
    let config = JanitorConfig::builder([engine])
        .interval(Duration::from_secs(10 * 60))
        .build()?; // refuses what the binary refuses
    let mut janitor = Janitor::new(config)?; // contacts no engine yet
    janitor.start(); // with the router's other workers

    let stdin_closed = async { tokio::io::stdin().read_to_end(&mut Vec::new()).await };
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
        // A loop that ended by itself is a bug: let the router restart.
        failed = janitor.wait_for_failure() => return Err(format!("{failed:?}").into()),
    }
    // At shutdown: every loop's outcome (Clean, DeadlineExceeded, Panicked, ...).
    for report in janitor.stop().await {
        println!("{}: {:?}", report.name, report.outcome);
    }
    Ok(())
}
