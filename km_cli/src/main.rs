//! `km_cli -s SOCKET [-r] [-d DIR]`: asks the km listening on SOCKET
//! (`km --mgtpipe=SOCKET`) for a snapshot of its payload (docs/snapshots.md).
//! Exits 0 once the file is complete, printing its name; non-zero with km's
//! reason when km refuses.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use km::snapshot::mgt::{self, Request};

/// Take a snapshot of the payload of a running km.
#[derive(Parser, Debug)]
#[command(name = "km_cli", version)]
struct Cli {
    /// The socket km listens on (its --mgtpipe).
    #[arg(short = 's', value_name = "SOCKET", required = true)]
    socket: PathBuf,

    /// The payload resumes after the snapshot (default: it ends).
    #[arg(short = 'r')]
    resume: bool,

    /// Write the snapshot into DIR (under the file name km's --snapshot gives).
    #[arg(short = 'd', value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = match cli.dir.map(std::path::absolute).transpose() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("km_cli: -d: {e}");
            return ExitCode::from(2);
        }
    };
    let req = Request {
        live: cli.resume,
        dir,
    };
    match mgt::ask(&cli.socket, &req) {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("km_cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}
