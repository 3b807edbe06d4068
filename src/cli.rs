//! The command line: clap definitions, and turning flags and files into library calls. Bad
//! usage exits 2 with one line naming the flag or file at fault.

use crate::auth::{Alg, Signer, TokenClaims};
/// Re-exported: `Failure` lives in run.rs, below this module, so the two do not import each other.
pub use crate::run::Failure;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// A SIP OAuth registrar for Cisco Jabber, and the load engine that storms it.
#[derive(Parser, Debug)]
#[command(name = "regstorm", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log verbosity on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write lab material: CA, server and Expressway-C certificates, a signing key, its
    /// jwks.json, and a registrar.toml that uses them.
    Keys(KeysArgs),
    /// Print one signed access token.
    Token(TokenArgs),
    /// Run the registrar.
    Serve(ServeArgs),
    /// The main job: a registrar and the load engine in one process over loopback TLS with
    /// fresh lab material; runs a profile, prints a table, writes a results folder.
    Bench(BenchArgs),
    /// The load engine against any registrar.
    Load(LoadArgs),
    /// Compare runs and decide: exit 0 holds, 1 a figure regressed, 2 bad input.
    Gate(GateArgs),
}

/// Flags named after profile keys; they override the profile.
#[derive(Args, Debug, Clone)]
pub struct ProfileFlags {
    /// Profile: an embedded name (quick, ci, steady, storm, churn, mra, million, mra-storm,
    /// stall, flood) or a file.
    #[arg(long)]
    pub profile: Option<String>,
    /// Results go into DIR/<profile>-<time>/.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    #[arg(long)]
    pub devices: Option<u64>,
    #[arg(long)]
    pub connections: Option<u64>,
    /// Seconds (duration_s).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Seconds (ramp_s).
    #[arg(long)]
    pub ramp: Option<u64>,
    /// REGISTER/s offered (open loop); 0: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds (reregister_s).
    #[arg(long)]
    pub reregister: Option<u64>,
    /// Seconds (token_ttl_s).
    #[arg(long)]
    pub token_ttl: Option<u64>,
    /// Seconds (timeout_s).
    #[arg(long)]
    pub timeout: Option<u64>,
    #[arg(long)]
    pub seed: Option<u64>,
}

impl ProfileFlags {
    fn run_args(&self, default_profile: &str) -> crate::run::RunArgs {
        crate::run::RunArgs {
            profile: self
                .profile
                .clone()
                .unwrap_or_else(|| default_profile.to_string()),
            overrides: crate::load::profile::Overrides {
                devices: self.devices,
                connections: self.connections,
                duration_s: self.duration,
                ramp_s: self.ramp,
                rate: self.rate,
                reregister_s: self.reregister,
                token_ttl_s: self.token_ttl,
                timeout_s: self.timeout,
                seed: self.seed,
            },
            out: self.out.clone(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub run: ProfileFlags,
    /// Cores for the registrar; the load engine gets the others (default: half, at least 1).
    #[arg(long)]
    pub registrar_cores: Option<usize>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    #[command(flatten)]
    pub run: ProfileFlags,
    /// The registrar, HOST:PORT.
    #[arg(long)]
    pub target: String,
    /// tls, tcp (lab listeners) or udp.
    #[arg(long, default_value = "tls")]
    pub transport: String,
    /// CA certificate(s) to verify the registrar with (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate for mode "mra" (PEM).
    #[arg(long)]
    pub client_cert: Option<PathBuf>,
    #[arg(long)]
    pub client_key: Option<PathBuf>,
    /// The PKCS#8 key tokens are signed with (the registrar must trust its public key).
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    #[arg(long)]
    pub kid: Option<String>,
    /// The name to verify in the registrar's certificate (default: the target's address).
    #[arg(long)]
    pub server_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The baseline: summary.json files or results folders (a folder of results folders counts
    /// as its runs). Several: paired rounds, in order, as many as --current. None: only the
    /// absolute limits are checked.
    #[arg(long, num_args = 1..)]
    pub baseline: Vec<PathBuf>,
    /// The run(s) to judge, as --baseline.
    #[arg(long, num_args = 1.., required = true)]
    pub current: Vec<PathBuf>,
    /// Thresholds (TOML); default: the shipped profiles/gate.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also write JUnit XML here (one test case per figure).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Also write a Markdown report here (for a pull-request comment).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The registrar configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Check the configuration and every file it names, then exit.
    #[arg(long)]
    pub check: bool,
    /// Overrides `registrar.cores` (0: every online core).
    #[arg(long)]
    pub cores: Option<u32>,
    /// Overrides `admin.addr`.
    #[arg(long)]
    pub admin: Option<std::net::SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyAlg {
    #[value(name = "EdDSA")]
    EdDsa,
    #[value(name = "ES256")]
    Es256,
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    /// Folder to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Signing key algorithm.
    #[arg(long, value_enum, default_value_t = KeyAlg::EdDsa)]
    pub alg: KeyAlg,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// PKCS#8 private key (PEM or DER): Ed25519, P-256 or RSA.
    #[arg(long)]
    pub key: PathBuf,
    /// Key id for the header (default: the key's RFC 7638 thumbprint).
    #[arg(long)]
    pub kid: Option<String>,
    /// The user (`sub`).
    #[arg(long)]
    pub sub: String,
    /// Line numbers the token allows, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub lines: Vec<String>,
    /// Device name (`dev`), e.g. CSFrado.
    #[arg(long)]
    pub dev: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Issuer (`iss`).
    #[arg(long)]
    pub iss: Option<String>,
    /// Audience (`aud`).
    #[arg(long)]
    pub aud: Option<String>,
}

/// A failure the user can fix: printed as one line, exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Self {
        Failure {
            message: e.0,
            status: 2,
        }
    }
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Keys(a) => Ok(keys(a)?),
        Command::Token(a) => Ok(token(a)?),
        Command::Serve(a) => serve(a),
        Command::Gate(a) => gate(a),
        Command::Bench(a) => crate::run::bench(a.run.run_args("quick"), a.registrar_cores),
        Command::Load(a) => {
            let Some(_) = a.run.profile.as_ref() else {
                return Err(UsageError("--profile: required".into()).into());
            };
            let run = a.run.run_args("quick");
            crate::run::load(
                run,
                crate::run::LoadTarget {
                    target: a.target,
                    transport: a.transport,
                    ca: a.ca,
                    client_cert: a.client_cert,
                    client_key: a.client_key,
                    signing_key: a.signing_key,
                    kid: a.kid,
                    server_name: a.server_name,
                },
            )
        }
    }
}

fn serve(a: ServeArgs) -> Result<(), Failure> {
    let mut cfg = crate::config::Config::load(&a.config).map_err(|e| UsageError(e.to_string()))?;
    if let Some(c) = a.cores {
        if c > 1024 {
            return Err(UsageError(format!("--cores: {c} is above 1024")).into());
        }
        cfg.registrar.cores = c;
    }
    if let Some(addr) = a.admin {
        cfg.admin = Some(addr);
    }
    if a.check {
        crate::rt::check(&cfg).map_err(|e| UsageError(e.to_string()))?;
        println!("{}: ok", a.config.display());
        return Ok(());
    }
    crate::rt::serve(cfg).map_err(|e| match e {
        crate::rt::StartError::Config(e) => Failure::from(UsageError(e.to_string())),
        crate::rt::StartError::Runtime(message) => Failure { message, status: 1 },
    })
}

/// The summary.json files `path` stands for: itself (a file), its summary.json (a results
/// folder), or its results folders' in name order (a folder of them, as `scripts/ab.sh` leaves).
fn summaries(path: &std::path::Path) -> Result<Vec<PathBuf>, UsageError> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| UsageError(format!("{shown}: cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let own = path.join("summary.json");
    if own.is_file() {
        return Ok(vec![own]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| UsageError(format!("{shown}: cannot read: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path().join("summary.json")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(UsageError(format!(
            "{shown}: no summary.json in it nor in the folders in it"
        )));
    }
    Ok(found)
}

fn read_runs(paths: &[PathBuf]) -> Result<Vec<crate::gate::Run>, UsageError> {
    let mut runs = Vec::new();
    for p in paths {
        for file in summaries(p)? {
            let shown = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| UsageError(format!("{shown}: cannot read: {e}")))?;
            let run = crate::gate::Run::from_summary_json(&shown, &text)
                .map_err(|e| UsageError(e.to_string()))?;
            runs.push(run);
        }
    }
    Ok(runs)
}

fn gate(a: GateArgs) -> Result<(), Failure> {
    use crate::gate::{report, Thresholds};
    let thresholds = match &a.config {
        None => Thresholds::shipped(),
        Some(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("{file}: cannot read: {e}")))?;
            Thresholds::parse(&text, &file).map_err(|e| UsageError(e.to_string()))?
        }
    };
    let baseline = read_runs(&a.baseline)?;
    let current = read_runs(&a.current)?;
    let decision = crate::gate::decide(&baseline, &current, &thresholds)
        .map_err(|e| UsageError(format!("--baseline, --current: {e}")))?;
    let provenance = report::Provenance {
        baseline: &baseline,
        current: &current,
        thresholds: &thresholds.file,
    };
    print!("{}", report::text(&decision, &provenance));
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text)
            .map_err(|e| UsageError(format!("{}: cannot write: {e}", path.display())))
    };
    if let Some(path) = &a.junit {
        write(path, report::junit(&decision, &provenance))?;
    }
    if let Some(path) = &a.markdown {
        write(path, report::markdown(&decision, &provenance))?;
    }
    if decision.holds() {
        return Ok(());
    }
    let names: Vec<&str> = decision.regressed().map(|r| r.figure.name()).collect();
    Err(Failure {
        message: format!("regression: {}", names.join(", ")),
        status: 1,
    })
}

fn keys(a: KeysArgs) -> Result<(), UsageError> {
    let alg = match a.alg {
        KeyAlg::EdDsa => Alg::EdDSA,
        KeyAlg::Es256 => Alg::ES256,
    };
    let lab = crate::lab::generate(alg).map_err(|e| UsageError(e.to_string()))?;
    let files = lab.write(&a.out).map_err(|e| UsageError(e.to_string()))?;
    for f in files {
        println!("{}", f.display());
    }
    eprintln!(
        "signing key {} ({}), kid {}",
        a.out.join("signing.key").display(),
        alg.as_str(),
        lab.kid
    );
    Ok(())
}

fn token(a: TokenArgs) -> Result<(), UsageError> {
    let file = a.key.display().to_string();
    let bytes = std::fs::read(&a.key).map_err(|e| UsageError(format!("--key {file}: {e}")))?;
    let mut signer = Signer::from_pkcs8(&bytes, &file).map_err(|e| UsageError(e.to_string()))?;
    if let Some(kid) = &a.kid {
        if kid.is_empty() {
            return Err(UsageError("--kid: empty".into()));
        }
        signer = signer.with_kid(kid);
    }
    if a.sub.is_empty() {
        return Err(UsageError("--sub: empty".into()));
    }
    if a.ttl == 0 {
        return Err(UsageError("--ttl: must be at least 1 second".into()));
    }
    let now = now_s();
    let lines: Vec<&str> = a.lines.iter().map(String::as_str).collect();
    let claims = TokenClaims {
        sub: &a.sub,
        iat: now,
        exp: now + a.ttl,
        nbf: None,
        iss: a.iss.as_deref(),
        aud: a.aud.as_deref(),
        lines: &lines,
        dev: a.dev.as_deref(),
    };
    println!("{}", signer.mint(&claims));
    Ok(())
}
