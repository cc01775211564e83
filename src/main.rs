//! The `nmiface` command line. All logic lives in the library; this binary parses arguments,
//! prints results and maps outcomes to exit codes: 0 ok, 1 finished with findings that lose
//! meaning (or capability gaps), 2 error (bad input, NetworkManager refusal, usage).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
