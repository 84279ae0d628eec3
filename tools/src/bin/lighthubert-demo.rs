//! `lighthubert-demo`: run several subnets on this GPU and draw what happened into a PNG
//! (see `lighthubert_tools::demo`). Every failure prints one line and exits non-zero.

use std::process::ExitCode;

use clap::Parser;
use lighthubert_tools::demo::{run, DemoArgs};

fn main() -> ExitCode {
    let _runtime_dir = lighthubert_tools::ensure_runtime_dir();
    let args = match DemoArgs::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}
