//! The `wfhost` command. Everything it does lives in the library; this
//! binary only parses arguments, prints, and picks the exit status.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
