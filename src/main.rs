use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match km::cli::Cli::try_parse_from(km::cli::normalize(std::env::args_os())) {
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
