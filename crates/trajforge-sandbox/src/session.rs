//! A persistent bash shell inside the sandbox for one episode.
//!
//! Protocol: bash reads lines from a pipe. Each command is sent as one line,
//! `eval $'<quoted>' </dev/null 3>&-; __tf_fin $?`, so `cd` and variables persist while the
//! command cannot read our protocol from standard input. `__tf_fin` prints an end marker
//! carrying a random token and the exit code on file descriptor 3 (a copy of the output
//! pipe that commands do not get, so `exec >file` cannot swallow it). Output before the
//! marker is the command's output.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Result, SandboxError};
use crate::output::{Capture, CommandOutput, MarkerScanner};
use crate::proctree;
use crate::spawn::{self, ReadEnd, Sandbox};
use crate::workspace::{self, BusyGuard, WsInner};

/// Largest file `read_file` returns.
const MAX_FILE_BYTES: usize = 64 << 20;
/// How long a freshly started shell may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an interrupted command may take to report back before the shell is replaced.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
/// Note appended when the shell had to be replaced.
const RESTART_NOTE: &str = "\n[trajforge: the shell was restarted; working directory, variables and background processes were reset]";

/// The persistent shell of one episode.
///
/// Holds the workspace's overlay mounted for its whole life; drop it to end the episode's
/// processes. Only one session (or one-shot command) may use a workspace at a time.
#[derive(Debug)]
pub struct Session {
    ws: Arc<WsInner>,
    shell: Option<Shell>,
    token: (String, String),
    restarts: u32,
    _guard: BusyGuard,
}

/// A live bash process in its sandbox.
#[derive(Debug)]
struct Shell {
    sandbox: Sandbox,
    /// Host pids of bubblewrap's processes and of bash itself, never killed on interrupt.
    keep: Vec<u32>,
    /// Host pid of bash.
    shell_pid: Option<u32>,
    /// Pid of bash in its own pid namespace (the one a container `exec` sees).
    ns_pid: u32,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Session {
    /// Claims the workspace and starts the shell.
    pub(crate) fn start(ws: Arc<WsInner>) -> Result<Self> {
        let guard = ws.acquire()?;
        let token = random_token()?;
        let mut session = Session {
            ws,
            shell: None,
            token,
            restarts: 0,
            _guard: guard,
        };
        session.shell = Some(session.spawn_shell()?);
        Ok(session)
    }

    /// How many times the shell was restarted (state lost) so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Runs `cmd` in the persistent shell; `timeout` defaults to the configured limit.
    ///
    /// On timeout every process the command started is killed and the shell kept; if the
    /// shell itself does not come back (a builtin loop, say) it is replaced, which the result
    /// reports with `shell_restarted`. Unless `keep_background` is set, processes the command
    /// left in the background are killed when it returns.
    pub fn run(&mut self, cmd: &str, timeout: Option<Duration>) -> Result<CommandOutput> {
        let limits = &self.ws.env.config.limits;
        let timeout = timeout.unwrap_or(limits.timeout);
        let max_output = limits.max_output_bytes;
        self.run_with(cmd, timeout, max_output)
    }

    /// The patch of the workspace against the base commit.
    ///
    /// It is never computed through this shell, whose functions, traps and `PATH` the episode
    /// controls: the shell is ended (with every process of the episode), the patch computed in
    /// a fresh sandbox ([`crate::Workspace::diff`]), and a new shell started in the same
    /// working directory. Variables and background processes do not survive a call.
    pub fn diff(&mut self) -> Result<String> {
        let timeout = Duration::from_secs(5);
        let cwd = self
            .run_with("pwd", timeout, 8 * 1024)
            .ok()
            .filter(|out| out.exit_code == Some(0) && !out.shell_restarted)
            .map(|out| out.output.trim_end_matches('\n').to_owned());
        if let Some(mut shell) = self.shell.take() {
            spawn::kill_sandbox(&mut shell.sandbox);
        }
        let patch = workspace::diff_unlocked(&self.ws);
        self.shell = Some(self.spawn_shell()?);
        if let Some(cwd) = cwd.filter(|d| !d.contains('\n')) {
            let cmd = format!("cd {} 2>/dev/null", ansi_c_quote(&cwd));
            self.run_with(&cmd, timeout, 8 * 1024)?;
        }
        patch
    }

    /// Reads a file inside the sandbox (relative paths start at the shell's directory).
    pub fn read_file(&mut self, path: &str) -> Result<Vec<u8>> {
        let cmd = format!("base64 -w0 < {}", ansi_c_quote(path));
        let timeout = self.ws.env.config.limits.timeout;
        let out = self.run_with(&cmd, timeout, MAX_FILE_BYTES / 3 * 4 + 8)?;
        let decoded = (out.exit_code == Some(0) && !out.clipped && !out.timed_out)
            .then(|| crate::b64::decode(&out.output))
            .flatten();
        decoded.ok_or_else(|| SandboxError::FileOp {
            op: "read",
            path: path.to_owned(),
            exit_code: out.exit_code,
            output: if out.clipped {
                format!("file larger than {MAX_FILE_BYTES} bytes")
            } else {
                out.output
            },
        })
    }

    /// Writes (creates or replaces) a file inside the sandbox; its directory must exist.
    pub fn write_file(&mut self, path: &str, contents: &[u8]) -> Result<()> {
        let cmd = format!(
            "printf '%s' '{}' | base64 -d > {}",
            crate::b64::encode(contents),
            ansi_c_quote(path)
        );
        let timeout = self.ws.env.config.limits.timeout;
        let out = self.run_with(&cmd, timeout, 64 * 1024)?;
        if out.exit_code == Some(0) && !out.timed_out {
            return Ok(());
        }
        Err(SandboxError::FileOp {
            op: "write",
            path: path.to_owned(),
            exit_code: out.exit_code,
            output: out.output,
        })
    }

    /// Replaces the shell with a fresh one (working directory and variables are reset).
    pub fn restart(&mut self) -> Result<()> {
        if let Some(mut shell) = self.shell.take() {
            spawn::kill_sandbox(&mut shell.sandbox);
        }
        self.restarts += 1;
        self.shell = Some(self.spawn_shell()?);
        Ok(())
    }

    /// Runs `cmd` with explicit timeout and output budget.
    fn run_with(
        &mut self,
        cmd: &str,
        timeout: Duration,
        max_output: usize,
    ) -> Result<CommandOutput> {
        if cmd.contains('\0') {
            return Err(SandboxError::NulInCommand);
        }
        let started = Instant::now();
        let mut restarted = false;
        if self.shell.is_none() {
            self.restart()?;
            restarted = true;
        }
        let line = format!("eval {} </dev/null 3>&-; __tf_fin $?\n", ansi_c_quote(cmd));
        if self.send(&line).is_err() {
            // The shell died since the last command: start a new one and try once more.
            self.restart()?;
            restarted = true;
            self.send(&line).map_err(|source| SandboxError::Pipe {
                action: "sending a command",
                source,
            })?;
        }
        let mut capture = Capture::new(max_output);
        let mut scanner = MarkerScanner::new(self.end_prefix());
        let deadline = started + timeout;
        let (end, code) = self.read_marker(&mut scanner, &mut capture, deadline)?;
        let mut timed_out = false;
        let exit_code = match end {
            ReadEnd::Done => code,
            ReadEnd::Eof => {
                // The command ended the shell (`exit`, `set -e`, ...).
                scanner.flush(&mut capture);
                let status = self
                    .shell
                    .take()
                    .and_then(|mut s| spawn::kill_sandbox(&mut s.sandbox));
                self.restart()?;
                restarted = true;
                status.and_then(spawn::exit_code)
            }
            ReadEnd::Deadline => {
                timed_out = true;
                if self.interrupt(&mut scanner, &mut capture)? {
                    None
                } else {
                    scanner.flush(&mut capture);
                    self.restart()?;
                    restarted = true;
                    None
                }
            }
        };
        let duration = started.elapsed();
        let (mut output, clipped) = capture.finish_command(timed_out, timeout);
        if restarted {
            output.push_str(RESTART_NOTE);
        }
        Ok(CommandOutput {
            output,
            exit_code,
            timed_out,
            duration,
            clipped,
            shell_restarted: restarted,
        })
    }

    /// Reads until the end marker, EOF or `deadline`.
    fn read_marker(
        &mut self,
        scanner: &mut MarkerScanner,
        capture: &mut Capture,
        deadline: Instant,
    ) -> Result<(ReadEnd, Option<i32>)> {
        let Some(shell) = self.shell.as_mut() else {
            return Ok((ReadEnd::Eof, None));
        };
        let mut code = None;
        let end = spawn::read_until(&mut shell.sandbox.out, deadline, |chunk| {
            match scanner.feed(chunk, capture) {
                Some(n) => {
                    code = Some(i32::try_from(n).unwrap_or(-1));
                    true
                }
                None => false,
            }
        })?;
        Ok((end, code))
    }

    /// Interrupts the running command: tells bash to skip the rest of it (SIGUSR1, see the
    /// DEBUG trap) and kills every other process in the sandbox, repeatedly, until the end
    /// marker arrives. Returns false if the shell did not come back within the grace period.
    fn interrupt(&mut self, scanner: &mut MarkerScanner, capture: &mut Capture) -> Result<bool> {
        let Some(shell) = &self.shell else {
            return Ok(false);
        };
        if let Some(container) = shell.sandbox.container.clone() {
            // Only the engine reaches a container's processes: each round is one `exec`.
            let ns_pid = shell.ns_pid;
            return self.interrupt_rounds(scanner, capture, |first| {
                container.interrupt(ns_pid, first);
            });
        }
        let root = shell.sandbox.child.id();
        let keep = shell.keep.clone();
        let shell_pid = shell.shell_pid;
        self.interrupt_rounds(scanner, capture, |first| {
            if let (Some(pid), true) = (shell_pid, first) {
                crate::sys::kill(pid, libc::SIGUSR1);
            }
            proctree::kill_descendants_except(root, &keep);
        })
    }

    /// Runs `round` (told whether it is the first) until the end marker arrives, the shell
    /// is gone, or the grace period ends; whether the marker came.
    fn interrupt_rounds(
        &mut self,
        scanner: &mut MarkerScanner,
        capture: &mut Capture,
        mut round: impl FnMut(bool),
    ) -> Result<bool> {
        let grace = Instant::now() + INTERRUPT_GRACE;
        let mut first = true;
        while Instant::now() < grace {
            round(first);
            first = false;
            let step = (Instant::now() + Duration::from_millis(50)).min(grace);
            match self.read_marker(scanner, capture, step)? {
                (ReadEnd::Done, _) => return Ok(true),
                (ReadEnd::Eof, _) => return Ok(false),
                (ReadEnd::Deadline, _) => {}
            }
        }
        Ok(false)
    }

    /// Writes one protocol line to the shell.
    fn send(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self
            .shell
            .as_mut()
            .and_then(|s| s.sandbox.stdin.as_mut())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        stdin.write_all(line.as_bytes())?;
        stdin.flush()
    }

    /// Prefix of the end-of-command marker.
    fn end_prefix(&self) -> String {
        format!("__TFEND_{}{}_", self.token.0, self.token.1)
    }

    /// Starts bash in a new sandbox over the workspace and waits until it is ready.
    fn spawn_shell(&self) -> Result<Shell> {
        let env = &self.ws.env;
        let spec = spawn::Spec {
            config: &env.config,
            program: &env.program,
            limits: &env.config.limits,
            root: self.ws.root(),
            network: false,
            argv: spawn::bash(None),
            stdin: true,
            extra_ro: Vec::new(),
        };
        let sandbox = spawn::start(&spec)?;
        let mut shell = Shell {
            sandbox,
            keep: Vec::new(),
            shell_pid: None,
            ns_pid: 0,
        };
        let kill_rest = if env.config.keep_background {
            ""
        } else {
            "kill -9 -1 2>/dev/null; "
        };
        // extdebug + a DEBUG trap that fails while `__tf_abort` is set make bash skip the rest
        // of an interrupted command (like Ctrl-C would), up to our `__tf_fin`.
        let init = format!(
            "exec 3>&1\nshopt -s extdebug\n__tf_a={a}; __tf_b={b}; __tf_abort=\n\
             trap '__tf_abort=1' USR1\n\
             trap '[[ -z $__tf_abort ]] || {{ [[ $BASH_COMMAND == \"__tf_fin \"* ]] && __tf_abort=; }}' DEBUG\n\
             __tf_fin() {{ local ec=$1; {kill_rest}printf '__TFEND_%s%s_%d__\\n' \"$__tf_a\" \"$__tf_b\" \"$ec\" >&3; }}\n\
             printf '__TFREADY_%s%s_%d__\\n' \"$__tf_a\" \"$__tf_b\" \"$$\" >&3\n",
            a = self.token.0,
            b = self.token.1,
        );
        let sent = shell
            .sandbox
            .stdin
            .as_mut()
            .map(|s| s.write_all(init.as_bytes()).and_then(|()| s.flush()));
        let mut capture = Capture::new(64 * 1024);
        let mut scanner =
            MarkerScanner::new(format!("__TFREADY_{}{}_", self.token.0, self.token.1));
        let mut ns_pid = None;
        let end = spawn::read_until(
            &mut shell.sandbox.out,
            Instant::now() + START_TIMEOUT,
            |chunk| match scanner.feed(chunk, &mut capture) {
                Some(n) => {
                    ns_pid = u32::try_from(n).ok();
                    true
                }
                None => false,
            },
        )?;
        let Some(ns_pid) =
            ns_pid.filter(|_| matches!(end, ReadEnd::Done) && matches!(sent, Some(Ok(()))))
        else {
            scanner.flush(&mut capture);
            let status = spawn::kill_sandbox(&mut shell.sandbox);
            let mut rest = String::new();
            let _ = shell.sandbox.out.read_to_string(&mut rest);
            return Err(SandboxError::ShellStart {
                detail: format!(
                    "exit status {:?}, output: {}{rest}",
                    status.and_then(spawn::exit_code),
                    capture.finish().0
                ),
            });
        };
        shell.ns_pid = ns_pid;
        if shell.sandbox.container.is_some() {
            return Ok(shell);
        }
        let outer = shell.sandbox.child.id();
        shell.keep.push(outer);
        for pid in proctree::descendants(outer) {
            let ns = proctree::ns_pids(pid);
            let inner = ns.last().copied();
            if ns.len() >= 2 && inner == Some(1) {
                shell.keep.push(pid);
            } else if ns.len() >= 2 && inner == Some(ns_pid) {
                shell.keep.push(pid);
                shell.shell_pid = Some(pid);
            }
        }
        Ok(shell)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut shell) = self.shell.take() {
            spawn::kill_sandbox(&mut shell.sandbox);
        }
    }
}

/// Quotes `text` as a bash `$'...'` string.
fn ansi_c_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    out.push_str("$'");
    for byte in text.bytes() {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('\'');
    out
}

/// Two random hex strings from /dev/urandom, together the marker token.
fn random_token() -> Result<(String, String)> {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(SandboxError::io("read", "/dev/urandom"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex[..12].to_owned(), hex[12..].to_owned()))
}

#[cfg(test)]
mod tests {
    use super::ansi_c_quote;

    #[test]
    fn quoting_escapes_quotes_backslashes_and_controls() {
        assert_eq!(ansi_c_quote("echo 'a'\\n\n"), "$'echo \\'a\\'\\\\n\\x0a'");
        assert_eq!(ansi_c_quote("é"), "$'\\xc3\\xa9'");
    }
}
