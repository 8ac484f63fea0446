//! krun: an OCI runtime that runs every container's process as a km payload.
//! It rewrites the bundle's config.json on `create`/`run` (and the process of an
//! `exec`) so the process runs under km with /dev/kvm, then hands the command line
//! to runc (or the runtime named by `--delegate` or `KRUN_RUNTIME`), which does
//! all the container work. docs/deploy.md: krun.

mod bundle;
mod cli;
mod rewrite;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use cli::Invocation;

/// Where krun looks for the runtime it delegates to, when not told.
const DEFAULT_DELEGATE: &str = "runc";
/// Extra options for km in every container, before the annotation's.
const KM_OPTIONS_ENV: &str = "KRUN_KM_OPTIONS";

fn main() -> ExitCode {
    let inv = match Invocation::parse(std::env::args_os().skip(1)) {
        Ok(inv) => inv,
        Err(e) => return fail(None, &anyhow::anyhow!(e)),
    };
    match run(&inv) {
        Ok(code) => code,
        Err(e) => fail(Some(&inv), &e),
    }
}

/// Reports krun's own error on stderr and in the `--log` file, where the engine
/// (podman, containerd) reads a runtime's errors from.
fn fail(inv: Option<&Invocation>, err: &anyhow::Error) -> ExitCode {
    let msg = format!("krun: {err:#}");
    eprintln!("{msg}");
    if let Some(log) = inv.and_then(|i| i.log.as_deref()) {
        let json = inv.and_then(|i| i.log_format.as_deref()) == Some("json");
        let line = if json {
            serde_json::json!({ "level": "error", "msg": msg }).to_string()
        } else {
            format!("level=error msg={msg:?}")
        };
        let _ = append_line(log, &line);
    }
    ExitCode::FAILURE
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    writeln!(file, "{line}")
}

fn run(inv: &Invocation) -> Result<ExitCode> {
    let delegate = delegate(inv);
    match inv.command_name() {
        None if inv.has_global_flag(&["version", "v"]) => print_version(&delegate),
        Some("features") => print_features(&delegate, inv),
        Some("create" | "run") => {
            bundle::rewrite_config(&inv.bundle(), &km_path()?, &km_options_from_env())?;
            exec_delegate(&delegate, inv.args.clone())
        }
        Some("exec") => exec_delegate(&delegate, exec_args(inv)?),
        _ => exec_delegate(&delegate, inv.args.clone()),
    }
}

/// `--delegate`, else `KRUN_RUNTIME`, else runc found on PATH.
fn delegate(inv: &Invocation) -> PathBuf {
    inv.delegate
        .clone()
        .or_else(|| std::env::var_os("KRUN_RUNTIME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DELEGATE))
}

/// km, installed beside krun (PREFIX/bin/km).
fn km_path() -> Result<PathBuf> {
    let me = std::env::current_exe().context("finding krun's own path")?;
    let km = me.with_file_name("km");
    if !km.is_file() {
        bail!("no km beside krun: {} is missing", km.display());
    }
    Ok(km)
}

fn km_options_from_env() -> Vec<String> {
    std::env::var(KM_OPTIONS_ENV)
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `exec`'s arguments with its process under km: the `--process` file rewritten,
/// or km put before the command that follows the container id.
fn exec_args(inv: &Invocation) -> Result<Vec<OsString>> {
    let km = km_path()?;
    let options = km_options_from_env();
    if let Some(file) = inv.exec_process_file() {
        bundle::rewrite_process_file(&file, &km, &options)?;
        return Ok(inv.args.clone());
    }
    let mut args = inv.args.clone();
    let id = inv.exec_container_id().context("exec: no container id")?;
    if args.get(id + 1).is_none_or(|first| *first != *km) {
        let prefix =
            std::iter::once(km.into_os_string()).chain(options.into_iter().map(OsString::from));
        args.splice(id + 1..id + 1, prefix);
    }
    Ok(args)
}

/// Replaces krun with the delegate, so that its exit status, signals and
/// descriptors are the engine's directly.
fn exec_delegate(delegate: &Path, args: Vec<OsString>) -> Result<ExitCode> {
    let err = Command::new(delegate).args(args).exec();
    Err(err).with_context(|| format!("running the delegate runtime {}", delegate.display()))
}

fn print_version(delegate: &Path) -> Result<ExitCode> {
    println!("krun version {}", env!("CARGO_PKG_VERSION"));
    let out = delegate_output(delegate, &["--version"])?;
    print!("delegate: {}", String::from_utf8_lossy(&out));
    Ok(ExitCode::SUCCESS)
}

/// The delegate's `features`, with krun's own annotations added.
fn print_features(delegate: &Path, inv: &Invocation) -> Result<ExitCode> {
    let args: Vec<&std::ffi::OsStr> = inv.args.iter().map(OsString::as_os_str).collect();
    let out = delegate_output(delegate, &args)?;
    let mut features: serde_json::Value =
        serde_json::from_slice(&out).context("parsing the delegate's features")?;
    let annotations = features
        .as_object_mut()
        .context("the delegate's features are not a JSON object")?
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    let annotations = annotations
        .as_object_mut()
        .context("the delegate's features annotations are not an object")?;
    annotations.insert(
        "app.kontain.krun.version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    annotations.insert(
        "app.kontain.krun.km-options-annotation".into(),
        rewrite::KM_OPTIONS_ANNOTATION.into(),
    );
    println!("{}", serde_json::to_string_pretty(&features)?);
    Ok(ExitCode::SUCCESS)
}

/// What the delegate prints to stdout for `args`; its failure is krun's.
fn delegate_output<S: AsRef<std::ffi::OsStr>>(delegate: &Path, args: &[S]) -> Result<Vec<u8>> {
    let out = Command::new(delegate)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running the delegate runtime {}", delegate.display()))?;
    if !out.status.success() {
        bail!("{} failed: {}", delegate.display(), out.status);
    }
    Ok(out.stdout)
}
