//! `trajforge-bench sandbox`: what the default sandbox's hardening costs per command.
//!
//! The same commands run on the sample repository under five sandbox settings, interleaved
//! round by round so machine load hits them alike: the sandbox before hardening (the host's
//! whole /etc, no seccomp filter, no Landlock), each hardening alone, and the default (all
//! three). Figures are medians; the overhead column is against the unhardened baseline
//! measured in the same run. With `--podman-image`, a sixth column runs the same commands
//! in a podman container of that image (the container backend, `--sandbox podman`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use trajforge_sandbox::{Backend, Engine, Environment, EnvironmentOptions};

/// Options of `trajforge-bench sandbox`.
#[derive(Debug, clap::Args)]
pub(crate) struct SandboxArgs {
    /// Rounds; each runs every command once under every setting.
    #[arg(long, default_value_t = 30, value_name = "N")]
    rounds: usize,
    /// Folder for the repository and workspaces; the sandbox user must be able to reach it.
    #[arg(long, default_value = "/var/tmp", value_name = "DIR")]
    work_root: PathBuf,
    /// Also measure the container backend: podman with this local image (bash, git, python3).
    #[arg(long, value_name = "IMAGE")]
    podman_image: Option<String>,
}

/// One sandbox setting.
#[derive(Clone)]
struct Setting {
    name: &'static str,
    seccomp: bool,
    minimal_etc: bool,
    landlock: bool,
}

/// The container backend's column.
const PODMAN: Setting = Setting {
    name: "podman container",
    seccomp: true,
    minimal_etc: true,
    landlock: false,
};

const SETTINGS: [Setting; 5] = [
    Setting {
        name: "before: no hardening",
        seccomp: false,
        minimal_etc: false,
        landlock: false,
    },
    Setting {
        name: "seccomp filter only",
        seccomp: true,
        minimal_etc: false,
        landlock: false,
    },
    Setting {
        name: "reduced /etc only",
        seccomp: false,
        minimal_etc: true,
        landlock: false,
    },
    Setting {
        name: "Landlock only",
        seccomp: false,
        minimal_etc: false,
        landlock: true,
    },
    Setting {
        name: "default: all three",
        seccomp: true,
        minimal_etc: true,
        landlock: true,
    },
];

/// The measured operations.
const OPS: [&str; 5] = [
    "one-shot sandbox `true`",
    "session `true`",
    "session `python3 -c pass`",
    "session `git status`",
    "patch after an edit",
];

/// Run the benchmark.
pub(crate) fn run(args: SandboxArgs) -> Result<(), String> {
    let root = tempfile::Builder::new()
        .prefix("trajforge-bench-sandbox-")
        .tempdir_in(&args.work_root)
        .map_err(|e| format!("{}: cannot create a folder: {e}", args.work_root.display()))?;
    crate::agent::chmod_755(root.path())?;
    let repo = crate::agent::sample_repo(root.path())?;
    println!("sandbox hardening benchmark");
    let landlock = trajforge_sandbox::SandboxConfig::default().landlock_status();
    println!("  Landlock: {landlock:?}");
    println!(
        "  this machine: {} cores; sample repository; {} rounds, settings interleaved",
        crate::cores(),
        args.rounds
    );
    let mut settings = SETTINGS.to_vec();
    if args.podman_image.is_some() {
        settings.push(PODMAN);
    }
    let mut envs = Vec::new();
    for (i, s) in settings.iter().enumerate() {
        let mut options = EnvironmentOptions::new(root.path().join(format!("env-{i}")));
        options.sandbox.seccomp = s.seccomp;
        options.sandbox.minimal_etc = s.minimal_etc;
        options.sandbox.landlock = s.landlock;
        if let (Some(image), true) = (&args.podman_image, s.name == PODMAN.name) {
            options.sandbox.backend = Backend::Container {
                engine: Engine::Podman,
                image: image.clone(),
            };
        }
        let env = Environment::prepare(&repo, None, &options)
            .map_err(|e| format!("prepare ({}): {e}", s.name))?;
        envs.push(env);
    }
    // times[setting][op]
    let mut times = vec![vec![Vec::new(); OPS.len()]; settings.len()];
    for _ in 0..args.rounds.max(1) {
        for (i, env) in envs.iter().enumerate() {
            let ws = env.create_workspace().map_err(|e| e.to_string())?;
            times[i][0].push(timed(|| ws.run("true", None).map(drop))?);
            let mut s = ws.session().map_err(|e| e.to_string())?;
            for (op, cmd) in [
                (1, "true"),
                (2, "python3 -c pass"),
                (3, "git status --short"),
            ] {
                times[i][op].push(timed(|| {
                    let out = s.run(cmd, None)?;
                    debug_assert_eq!(out.exit_code, Some(0));
                    Ok(())
                })?);
            }
            s.run("echo change >> README.md", None)
                .map_err(|e| e.to_string())?;
            drop(s);
            times[i][4].push(timed(|| ws.diff().map(drop))?);
        }
    }
    println!();
    print!("  {:<28}", "median ms");
    for s in &settings {
        print!(" | {:>30}", s.name);
    }
    println!();
    for (op, name) in OPS.iter().enumerate() {
        print!("  {name:<28}");
        let base = median(&times[0][op]);
        for (i, _) in settings.iter().enumerate() {
            let m = median(&times[i][op]);
            if i == 0 {
                print!(" | {:>30}", format!("{:.2}", ms(m)));
            } else {
                let delta = ms(m) - ms(base);
                print!(
                    " | {:>30}",
                    format!(
                        "{:.2} ({delta:+.2}, {:+.1}%)",
                        ms(m),
                        100.0 * delta / ms(base)
                    )
                );
            }
        }
        println!();
    }
    println!(
        "\n  overhead is against the first column, measured in the same run; a session command \
         is one round trip to the persistent shell, a one-shot command starts a whole sandbox"
    );
    Ok(())
}

fn timed(
    f: impl FnOnce() -> Result<(), trajforge_sandbox::SandboxError>,
) -> Result<Duration, String> {
    let started = Instant::now();
    f().map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
