//! The `regstorm` command.

use clap::Parser as _;
use regstorm::cli::{Cli, LogLevel};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help and --version print and exit 0
        Err(e) => {
            // One line naming the flag at fault, as every other usage error.
            let text = e.to_string();
            let reason = text.split("\n\n").next().unwrap_or("bad usage");
            let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("regstorm: {}", reason.trim_start_matches("error: "));
            std::process::exit(2);
        }
    };
    let level = match cli.log_level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = regstorm::cli::run(cli) {
        eprintln!("regstorm: {}", e.message);
        std::process::exit(e.status);
    }
}
