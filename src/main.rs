//! The `regstorm` command.

use clap::Parser;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A SIP OAuth registrar for Cisco Jabber and the load engine that storms it.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
