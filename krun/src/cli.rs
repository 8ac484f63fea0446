//! The OCI runtime command line as runc reads it: global options, then a command
//! and its own options. krun reads only what it needs (its `--delegate`, the
//! command, a bundle or process file, an exec's container id) and passes every
//! other argument through unchanged.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// runc's global options that take a value (`--root DIR` or `--root=DIR`).
const GLOBAL_VALUED: &[&str] = &["log", "log-format", "root", "criu", "rootless"];
/// The options of `create` and `run` that take a value.
const CREATE_VALUED: &[&str] = &[
    "bundle",
    "b",
    "console-socket",
    "pid-file",
    "preserve-fds",
    "pidfd-socket",
];
/// The options of `exec` that take a value.
const EXEC_VALUED: &[&str] = &[
    "console-socket",
    "pidfd-socket",
    "cwd",
    "env",
    "e",
    "user",
    "u",
    "additional-gids",
    "g",
    "process",
    "p",
    "apparmor",
    "process-label",
    "cap",
    "c",
    "preserve-fds",
    "cgroup",
    "pid-file",
];

/// One option as written: its name without dashes and, for `--name=value`, the value.
struct Opt<'a> {
    name: &'a str,
    inline: Option<&'a OsStr>,
}

/// `-x`, `--name` or `--name=value` (runc also takes one dash for long names).
fn parse_opt(arg: &OsStr) -> Option<Opt<'_>> {
    let text = arg.to_str()?;
    if text == "-" || text == "--" || !text.starts_with('-') {
        return None;
    }
    let body = text.trim_start_matches('-');
    Some(match body.split_once('=') {
        Some((name, _)) => Opt {
            name,
            inline: Some(OsStr::new(
                &text[text.len() - body.len() + name.len() + 1..],
            )),
        },
        None => Opt {
            name: body,
            inline: None,
        },
    })
}

/// A command line split where krun needs it.
#[derive(Default)]
pub struct Invocation {
    /// `--delegate PATH`, krun's own option (not passed on).
    pub delegate: Option<PathBuf>,
    /// Every argument for the delegate, in order.
    pub args: Vec<OsString>,
    /// The index in `args` of the command (`create`, `run`...), if there is one.
    pub command: Option<usize>,
    /// The `--log` file and `--log-format`, where krun reports its own errors too.
    pub log: Option<PathBuf>,
    pub log_format: Option<String>,
}

impl Invocation {
    pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Self, String> {
        let mut argv = argv.into_iter();
        let mut inv = Invocation::default();
        while let Some(arg) = argv.next() {
            let Some(opt) = parse_opt(&arg) else {
                inv.command = Some(inv.args.len());
                inv.args.push(arg);
                inv.args.extend(argv);
                break;
            };
            let separate = opt.inline.is_none()
                && (opt.name == "delegate" || GLOBAL_VALUED.contains(&opt.name));
            let value = match opt.inline {
                Some(v) => Some(v.to_owned()),
                None if separate => Some(
                    argv.next()
                        .ok_or_else(|| format!("option --{} needs a value", opt.name))?,
                ),
                None => None,
            };
            let name = opt.name.to_owned();
            inv.take_global(&name, arg, separate, value);
        }
        Ok(inv)
    }

    /// Records global option `name` (`arg` as written; its `value`, given as the
    /// next argument when `separate`) and keeps it for the delegate unless it is
    /// krun's own.
    fn take_global(&mut self, name: &str, arg: OsString, separate: bool, value: Option<OsString>) {
        match name {
            "delegate" => {
                self.delegate = value.map(PathBuf::from);
                return;
            }
            "log" => self.log = value.clone().map(PathBuf::from),
            "log-format" => {
                self.log_format = value.as_ref().map(|v| v.to_string_lossy().into_owned());
            }
            _ => {}
        }
        self.args.push(arg);
        if separate {
            self.args.extend(value);
        }
    }

    /// The command's name (`create`, `exec`...).
    pub fn command_name(&self) -> Option<&str> {
        self.command.and_then(|i| self.args[i].to_str())
    }

    /// Whether a global option (before the command) is `-NAME`/`--NAME`.
    pub fn has_global_flag(&self, names: &[&str]) -> bool {
        let end = self.command.unwrap_or(self.args.len());
        self.args[..end]
            .iter()
            .filter_map(|a| parse_opt(a))
            .any(|o| o.inline.is_none() && names.contains(&o.name))
    }

    /// The command's arguments (after its name).
    fn command_args(&self) -> &[OsString] {
        self.command.map_or(&[], |i| &self.args[i + 1..])
    }

    /// The bundle of `create`/`run`: `--bundle`/`-b`, else the current directory,
    /// as runc takes it.
    pub fn bundle(&self) -> PathBuf {
        option_value(self.command_args(), CREATE_VALUED, &["bundle", "b"])
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    }

    /// `exec --process FILE`, the process description to run.
    pub fn exec_process_file(&self) -> Option<PathBuf> {
        option_value(self.command_args(), EXEC_VALUED, &["process", "p"]).map(PathBuf::from)
    }

    /// The index in `args` of `exec`'s container id (what follows it is the command).
    pub fn exec_container_id(&self) -> Option<usize> {
        let start = self.command? + 1;
        first_operand(&self.args[start..], EXEC_VALUED).map(|i| start + i)
    }
}

/// The value of the first of `names` among `args`, whose options named in `valued` take a value.
fn option_value<'a>(args: &'a [OsString], valued: &[&str], names: &[&str]) -> Option<&'a OsStr> {
    let mut i = 0;
    while i < args.len() {
        let Some(opt) = parse_opt(&args[i]) else {
            i += 1;
            continue;
        };
        let separate = opt.inline.is_none() && valued.contains(&opt.name);
        if names.contains(&opt.name) {
            return if separate {
                args.get(i + 1).map(OsString::as_os_str)
            } else {
                opt.inline
            };
        }
        i += if separate { 2 } else { 1 };
    }
    None
}

/// The index of the first argument that is neither an option nor an option's value.
fn first_operand(args: &[OsString], valued: &[&str]) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        match parse_opt(&args[i]) {
            None if args[i] == "--" => return (i + 1 < args.len()).then_some(i + 1),
            None => return Some(i),
            Some(opt) if opt.inline.is_none() && valued.contains(&opt.name) => i += 2,
            Some(_) => i += 1,
        }
    }
    None
}
