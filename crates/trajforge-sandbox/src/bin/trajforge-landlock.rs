//! The Landlock helper on its own, for programs that do not call
//! `trajforge_sandbox::landlock::run_helper_if_asked` themselves (this crate's tests).

use std::io::Write;

fn main() {
    trajforge_sandbox::landlock::run_helper_if_asked();
    let _ = writeln!(
        std::io::stderr(),
        "usage: trajforge-landlock {} WRITABLE... -- COMMAND...",
        trajforge_sandbox::landlock::HELPER_ARG
    );
    std::process::exit(2);
}
