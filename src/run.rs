//! The `load` and `bench` commands: a profile and flags turned into a run, a progress line, a
//! results folder and the table. `bench` also starts the registrar in this process, on
//! loopback TLS with freshly made lab material, on its own cores.

use crate::auth::Signer;
use crate::config::Config;
use crate::load::engine::Transport;
use crate::load::profile::{Mode, Overrides, Profile};
use crate::load::results::{
    folder_name, LoadFigures, Machine, RegistrarFigures, Summary, TokenCache,
};
use crate::rt::load::{Live, Plan, SignerFactory};
use crate::rt::{now_ms, now_us, Server};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a command failed: one line for stderr and the exit status (2 usage or configuration,
/// 1 a failed run).
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub status: i32,
}

/// Open files a run needs beyond its connections (executors, io_uring, logs, admin).
const FD_SLACK: u64 = 256;

fn usage(msg: impl Into<String>) -> Failure {
    Failure {
        message: msg.into(),
        status: 2,
    }
}

fn failed(msg: impl Into<String>) -> Failure {
    Failure {
        message: msg.into(),
        status: 1,
    }
}

/// What `load` and `bench` share.
#[derive(Debug)]
pub struct RunArgs {
    pub profile: String,
    pub overrides: Overrides,
    pub out: PathBuf,
    /// The command line, for summary.md.
    pub command: String,
}

/// Loads the profile and applies the flags.
fn profile(a: &RunArgs) -> Result<Profile, Failure> {
    let mut p = Profile::find(&a.profile).map_err(|e| usage(e.to_string()))?;
    let file = if Path::new(&a.profile).exists() {
        a.profile.clone()
    } else {
        format!("profiles/{}.toml", a.profile)
    };
    p.apply(&a.overrides, &file)
        .map_err(|e| usage(e.to_string()))?;
    Ok(p)
}

/// Raises the open-files limit to the hard limit and checks the run fits in it.
fn open_files(needed: u64, what: &str) -> Result<(), Failure> {
    let (soft, hard) = rlimit::Resource::NOFILE
        .get()
        .map_err(|e| failed(format!("reading the open-files limit: {e}")))?;
    if soft < hard {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    if needed > hard {
        return Err(usage(format!(
            "{what} needs about {needed} open files and the hard limit here is {hard}: lower \
             --connections (devices share connections as on MRA), or raise the hard limit \
             (ulimit -Hn, LimitNOFILE)"
        )));
    }
    Ok(())
}

fn signer_factory(pem: Vec<u8>, name: String, kid: Option<String>) -> SignerFactory {
    Arc::new(move || {
        let s = Signer::from_pkcs8(&pem, &name).map_err(|e| e.to_string())?;
        Ok(match &kid {
            Some(k) => s.with_kid(k),
            None => s,
        })
    })
}

fn client_tls(
    ca_pem: &[u8],
    ca_name: &str,
    identity: Option<(&[u8], &[u8])>,
    server_name: &str,
) -> Result<Transport, Failure> {
    use crate::tls::ClientPart;
    let config = crate::tls::client_config(ca_pem, identity).map_err(|(part, e)| {
        usage(match part {
            ClientPart::Ca => format!("{ca_name}: {e}"),
            ClientPart::Certificate => format!("--client-cert: {e}"),
            ClientPart::Key => format!("--client-key: {e}"),
        })
    })?;
    let server_name = ServerName::try_from(server_name.to_string())
        .map_err(|e| usage(format!("--server-name: {e}")))?;
    Ok(Transport::Tls {
        config: Arc::new(config),
        server_name,
    })
}

/// Runs the engine with a progress line on stderr; returns the outcome and the wall time.
fn drive(plan: Plan) -> Result<(crate::rt::load::Outcome, f64), Failure> {
    let live = Arc::new(Live::default());
    let duration = plan.profile.duration_s;
    let devices = plan.profile.devices;
    let l = live.clone();
    let progress = std::thread::spawn(move || {
        let bar = indicatif::ProgressBar::new(duration);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} s  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let (mut last_done, mut last_t) = (0u64, Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let start_us = l.start_us.load(Ordering::Relaxed);
            if start_us == 0 {
                // Tokens are being signed and devices built: the schedule has not started.
                bar.set_message(format!("signing {devices} tokens before the run"));
                continue;
            }
            let elapsed = now_ms().saturating_sub(start_us / 1000) / 1000;
            let done = l.completed.load(Ordering::Relaxed);
            let rate = (done - last_done) as f64 / last_t.elapsed().as_secs_f64().max(1e-3);
            (last_done, last_t) = (done, Instant::now());
            bar.set_position(elapsed.min(duration));
            bar.set_message(format!(
                "{rate:>8.0} REGISTER/s  sent {}  answered {done}  errors {}",
                l.sent.load(Ordering::Relaxed),
                l.errors.load(Ordering::Relaxed)
            ));
            if elapsed >= duration {
                bar.finish_and_clear();
                return;
            }
        }
    });
    let outcome = crate::rt::load::run(plan, live).map_err(failed)?;
    // From the schedule's start (not counting the tokens signed and devices built before).
    let wall = now_us().saturating_sub(outcome.start_us) as f64 / 1e6;
    let _ = progress.join();
    Ok((outcome, wall))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    p: &Profile,
    args: &RunArgs,
    target: SocketAddr,
    outcome: &crate::rt::load::Outcome,
    wall_s: f64,
    started_s: u64,
    token_cache: Option<TokenCache>,
    registrar: Option<RegistrarFigures>,
) -> Result<(), Failure> {
    let stats = &outcome.stats;
    let bank = outcome.bank;
    let mut summary = Summary::new(
        p,
        stats,
        started_s,
        wall_s,
        LoadFigures {
            cpu_s: outcome.cpu_s,
            mint_cpu_s: bank.cpu_s + stats.mint_ns as f64 / 1e9,
            lag_ms_max: stats.lag_ms_max,
            run_cpu_s: outcome.run_cpu_s,
            cpu_us_per_register: if stats.sent > 0 {
                outcome.run_cpu_s * 1e6 / stats.sent as f64
            } else {
                0.0
            },
            tokens_before_run: bank.tokens,
            tokens_before_run_cpu_s: bank.cpu_s,
            tokens_before_run_wall_s: bank.wall_s,
            tokens_before_run_bytes: bank.bytes,
            tokens_in_run: stats.tokens_minted,
            inline_mints: stats.inline_mints,
            rss_max_bytes: rss_max_bytes(),
        },
        Machine::here(),
    );
    summary.token_cache = token_cache;
    summary.registrar = registrar;
    summary.target = target.to_string();
    let dir = args.out.join(folder_name(&p.name, started_s));
    summary
        .write(&dir, stats, &args.command, started_s)
        .map_err(|e| failed(format!("writing results: {e}")))?;
    println!("{}", summary.table());
    println!("results: {}", dir.display());
    let completed: u64 = stats.responses.values().sum();
    if completed == 0 {
        return Err(failed(
            "no REGISTER was answered: the target could not be reached",
        ));
    }
    if stats.errors + stats.timeouts > 0 {
        return Err(failed(format!(
            "{} REGISTERs failed at the transport level and {} timed out",
            stats.errors, stats.timeouts
        )));
    }
    Ok(())
}

/// `regstorm bench`: registrar and load engine in one process over loopback TLS.
pub fn bench(args: RunArgs, registrar_cores: Option<usize>) -> Result<(), Failure> {
    let p = profile(&args)?;
    // Both ends of every connection live in this process.
    open_files(
        2 * p.connections + FD_SLACK,
        "this profile in one process (bench)",
    )?;
    let allowed = crate::rt::allowed_cpus();
    let reg_cores = registrar_cores.unwrap_or((allowed.len() / 2).max(1));
    if reg_cores == 0 || reg_cores > 1024 {
        return Err(usage("--registrar-cores: must be in 1..=1024"));
    }
    let load_cpus: Vec<usize> = if allowed.len() > reg_cores {
        allowed[reg_cores..].to_vec()
    } else {
        // Fewer CPUs than asked for: the engine shares the last one.
        vec![*allowed.last().unwrap_or(&0)]
    };

    // Fresh lab material in a temporary folder, removed at the end.
    let lab = crate::lab::generate(crate::auth::Alg::EdDSA).map_err(|e| failed(e.to_string()))?;
    let dir = std::env::temp_dir().join(format!("regstorm-bench-{}", std::process::id()));
    lab.write(&dir).map_err(|e| failed(e.to_string()))?;
    let max_conns = (p.connections + 64).max(18_000);
    let toml = format!(
        r#"[registrar]
cores = {reg_cores}
[auth]
jwks = "jwks.json"
[[listener]]
kind = "oauth"
addr = "127.0.0.1:0"
cert = "server.pem"
key = "server.key"
[[listener]]
kind = "mra"
addr = "127.0.0.1:0"
cert = "server.pem"
key = "server.key"
client_ca = "ca.pem"
expressway_names = ["{}"]
[limits]
max_connections = {max_conns}
"#,
        crate::lab::EXPRESSWAY_NAME
    );
    let cfg_path = dir.join("bench.toml");
    std::fs::write(&cfg_path, toml).map_err(|e| failed(e.to_string()))?;
    let cfg = Config::load(&cfg_path).map_err(|e| failed(e.to_string()))?;
    let rss_before = rss_bytes();
    let server = Server::start(cfg).map_err(|e| failed(e.to_string()))?;
    let (target, identity) = match p.mode {
        Mode::Oauth => (server.addr(crate::config::ListenerKind::Oauth), None),
        Mode::Mra => (
            server.addr(crate::config::ListenerKind::Mra),
            Some((lab.expressway_pem.as_bytes(), lab.expressway_key.as_bytes())),
        ),
    };
    let target = target.ok_or_else(|| failed("the registrar has no listener for this mode"))?;
    let transport = client_tls(lab.ca_pem.as_bytes(), "ca.pem", identity, "localhost")?;
    let signer = signer_factory(
        lab.signing_key.clone().into_bytes(),
        "signing.key".into(),
        None,
    );
    eprintln!(
        "bench: profile {} ({} devices over {} {} connections, {} s), registrar on {} core(s), \
         load engine on {} core(s), target {target}",
        p.name,
        p.devices,
        p.connections,
        match p.mode {
            Mode::Oauth => "TLS",
            Mode::Mra => "mutual TLS",
        },
        p.duration_s,
        reg_cores,
        load_cpus.len()
    );
    let cpu_before = process_cpu_s();
    let plan = Plan {
        profile: p.clone(),
        target,
        transport,
        signer,
        cpus: load_cpus,
        start_us: now_us() + 100_000,
    };
    let result = drive(plan);
    let started_s = result
        .as_ref()
        .map_or(now_ms() / 1000, |(o, _)| o.start_us / 1_000_000);
    // Let every core publish its token counters (twice a second).
    std::thread::sleep(Duration::from_millis(600));
    let (hits, misses) = server.metrics().token_cache_totals();
    let bindings = server.bindings() as u64;
    let rss = rss_bytes();
    let cpu_total = process_cpu_s() - cpu_before;
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let (outcome, wall) = result?;
    // The registrar's CPU during the run: the engine's, and the tokens signed before it on
    // threads of this process, are not its own.
    let registrar = RegistrarFigures {
        rss_bytes: rss,
        bindings,
        bytes_per_binding: if bindings > 0 {
            rss.saturating_sub(rss_before) as f64 / bindings as f64
        } else {
            0.0
        },
        cpu_s: (cpu_total - outcome.cpu_s - outcome.bank.cpu_s).max(0.0),
    };
    finish(
        &p,
        &args,
        target,
        &outcome,
        wall,
        started_s,
        Some(TokenCache { hits, misses }),
        Some(registrar),
    )
}

/// Transport flags of `load`.
#[derive(Debug)]
pub struct LoadTarget {
    pub target: String,
    pub transport: String,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub signing_key: Option<PathBuf>,
    pub kid: Option<String>,
    pub server_name: Option<String>,
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| usage(format!("{flag} {}: {e}", path.display())))
}

/// `regstorm load`: the engine against any registrar.
pub fn load(args: RunArgs, t: LoadTarget) -> Result<(), Failure> {
    let p = profile(&args)?;
    open_files(p.connections + FD_SLACK, "this profile")?;
    let target: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&t.target)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| usage(format!("--target: {:?} is not HOST:PORT", t.target)))?;
    let transport = match (t.transport.as_str(), p.mode) {
        ("tcp", Mode::Oauth) => Transport::Tcp,
        ("tcp" | "udp", Mode::Mra) => {
            return Err(usage("--transport: mode \"mra\" is mutual TLS only"))
        }
        ("udp", Mode::Oauth) => Transport::Udp,
        ("tls", mode) => {
            let ca =
                t.ca.as_deref()
                    .ok_or_else(|| usage("--ca: required with TLS"))?;
            let ca_pem = read(ca, "--ca")?;
            let identity = match (mode, &t.client_cert, &t.client_key) {
                (Mode::Mra, Some(c), Some(k)) => {
                    Some((read(c, "--client-cert")?, read(k, "--client-key")?))
                }
                (Mode::Mra, _, _) => {
                    return Err(usage(
                        "--client-cert and --client-key: required with mode \"mra\"",
                    ))
                }
                _ => None,
            };
            let name = t
                .server_name
                .clone()
                .unwrap_or_else(|| target.ip().to_string());
            client_tls(
                &ca_pem,
                &ca.display().to_string(),
                identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
                &name,
            )?
        }
        (other, _) => {
            return Err(usage(format!(
                "--transport: {other:?} is not tls, tcp or udp"
            )))
        }
    };
    let key_path = t
        .signing_key
        .as_deref()
        .ok_or_else(|| usage("--signing-key: required (the PKCS#8 key the registrar trusts)"))?;
    let pem = read(key_path, "--signing-key")?;
    let name = key_path.display().to_string();
    let signer = signer_factory(pem, name, t.kid.clone());
    signer().map_err(usage)?;
    let allowed = crate::rt::allowed_cpus();
    let plan = Plan {
        profile: p.clone(),
        target,
        transport,
        signer,
        cpus: allowed,
        start_us: now_us() + 100_000,
    };
    let (outcome, wall) = drive(plan)?;
    let started_s = outcome.start_us / 1_000_000;
    finish(&p, &args, target, &outcome, wall, started_s, None, None)
}

/// Resident memory of this process.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Peak resident memory of this process so far (`VmHWM`, in kB in /proc/self/status).
fn rss_max_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds of this process (all threads).
fn process_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}
