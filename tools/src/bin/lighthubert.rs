//! `lighthubert`: extract LightHuBERT features from audio files, describe checkpoints and
//! subnets, or (with no arguments) run the bundled demo. See `lighthubert --help`.
//!
//! Every failure prints one line, `error: <file>: <problem>`, and exits non-zero.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use lighthubert_tools::cli::Cli;
use lighthubert_tools::commands;
use lighthubert_tools::error::one_line;

fn main() -> ExitCode {
    let _runtime_dir = lighthubert_tools::ensure_runtime_dir();
    // A bug must still end in one line, not a backtrace dump.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error: {}{at} (please report this)", one_line(&msg));
    }));

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    ExitCode::from(e.exit_code() as u8)
                }
                _ => {
                    let text = e.render().to_string();
                    let first = text.lines().next().unwrap_or("invalid command line");
                    let first = first.strip_prefix("error: ").unwrap_or(first);
                    // clap puts the valid values on a line of their own; they belong in ours.
                    let values = text
                        .lines()
                        .map(str::trim)
                        .find(|l| l.starts_with("[possible values:"))
                        .map(|l| format!(" {l}"))
                        .unwrap_or_default();
                    eprintln!("error: {}{values} (see lighthubert --help)", one_line(first));
                    ExitCode::from(2)
                }
            };
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}
