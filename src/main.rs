use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let args = km::cli::symlink_invocation(&args).unwrap_or_else(|| km::cli::normalize(args));
    let cli = match km::cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                km::KM_ERROR_STATUS
            } else {
                0
            });
        }
    };
    ExitCode::from(km::main(cli))
}
