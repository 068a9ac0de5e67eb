use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = trainer::cli::Cli::parse();
    trainer::logging::init();

    match trainer::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
