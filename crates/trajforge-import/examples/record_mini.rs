//! Records the real mini-swe-agent trajectory kept as a test fixture
//! (`fixtures/mini-swe-agent/chunked_even.traj.json`): mini-swe-agent 2.4.6 runs on a git copy
//! of `examples/sample-repo` against the scripted fake OpenAI-compatible server of
//! trajforge-testkit, which plays a short, plausible fix of `chunked_even(iterable, 0)`.
//! Every observation, the patch and the file itself are mini-swe-agent's own output.
//!
//! ```text
//! bash scripts/bench-agent.sh --only mini   # installs mini-swe-agent into .cache/bench-venv once
//! cargo run -p trajforge-import --example record_mini [-- OUT [MINI]]
//! ```

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use trajforge_testkit::{FakeServer, Reply, Script, ServerOptions, Step};

const TASK: &str = "chunked_even(iterable, 0) fails with a confusing error

```python
>>> import more_itertools as mi
>>> list(mi.chunked_even([1, 2, 3], 0))
ValueError: Step for islice() must be a positive integer or None.
```

The message talks about islice, which I never called. `divide` and `batched` tell you that n must be at least 1; chunked_even should say the same.";

const EDIT: &str = r#"python3 - <<'EOF'
path = 'more_itertools/more.py'
src = open(path).read()
old = '    """\n    iterator = iter(iterable)\n\n    # Initialize a buffer'
new = ('    """\n    if n < 1:\n        raise ValueError(\'n must be at least 1\')\n\n'
       '    iterator = iter(iterable)\n\n    # Initialize a buffer')
assert src.count(old) == 1, src.count(old)
open(path, 'w').write(src.replace(old, new))
EOF"#;

fn step(i: u64, text: &str, command: &str) -> Step {
    // Token counts in the range a 2k-token prompt growing by each observation gives.
    Step::Reply(
        Reply::new()
            .content(text)
            .tool_call("bash", json!({ "command": command }))
            .usage(2100 + 350 * i, 40 + 9 * i),
    )
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn main() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let out = args.next().map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/mini-swe-agent/chunked_even.traj.json")
        },
        PathBuf::from,
    );
    let mini = args
        .next()
        .map_or_else(|| root.join(".cache/bench-venv/bin/mini"), PathBuf::from);
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let repo = tmp.path().join("more-itertools");
    run(Command::new("cp")
        .arg("-a")
        .arg(root.join("examples/sample-repo"))
        .arg(&repo))?;
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "trajforge")
            .env("GIT_AUTHOR_EMAIL", "trajforge@example.invalid")
            .env("GIT_COMMITTER_NAME", "trajforge")
            .env("GIT_COMMITTER_EMAIL", "trajforge@example.invalid"))
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "more-itertools 11.2.1"])?;
    let config = tmp.path().join("mswea-config");
    std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;

    let steps = vec![
        step(
            0,
            "I'll start by locating `chunked_even` to read its implementation.",
            "grep -n \"def chunked_even\" more_itertools/more.py",
        ),
        step(
            1,
            "Let me read the body of the function.",
            "nl -ba more_itertools/more.py | sed -n '4617,4650p'",
        ),
        step(
            2,
            "Now let me reproduce the reported error.",
            "python3 -c \"import more_itertools as mi; print(list(mi.chunked_even([1, 2, 3], 0)))\"",
        ),
        step(
            3,
            "The error comes from `islice(map(buffer.append, iterator), n, None, n)`: with n = 0 the step is 0. \
                 I'll validate n at the top of the function, with the same wording `divide` uses.",
            EDIT,
        ),
        step(
            4,
            "Let me check that normal use still works and that n = 0 now gives the clear message.",
            "python3 -c \"import more_itertools as mi; print(list(mi.chunked_even([1, 2, 3, 4, 5, 6, 7], 3)))\" && \
              python3 -c \"import more_itertools as mi; list(mi.chunked_even([1, 2, 3], 0))\"",
        ),
        step(
            5,
            "The message is clear now. Let me run the existing tests of chunked_even.",
            "python3 -m unittest tests.test_more.ChunkedEvenTests 2>&1 | tail -n 3",
        ),
        step(
            6,
            "The tests pass. I'll submit the change.",
            "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached",
        ),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let server = FakeServer::try_start(Script::sequence(steps), ServerOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let url = server.url();
        let status = tokio::process::Command::new(&mini)
            .args([
                "-y",
                "--exit-immediately",
                "-m",
                "openai/scripted-teacher",
                "-c",
                "mini.yaml",
                "-c",
            ])
            .arg(format!("model.model_kwargs.api_base={url}"))
            .arg("-c")
            .arg(format!("environment.cwd={}", repo.display()))
            .arg("-t")
            .arg(TASK)
            .arg("-o")
            .arg(&out)
            .current_dir(&repo)
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("MSWEA_CONFIGURED", "true")
            .env("MSWEA_COST_TRACKING", "ignore_errors")
            .env("MSWEA_GLOBAL_CONFIG_DIR", &config)
            .env("OPENAI_API_KEY", "sk-fake-fixture-key")
            .status()
            .await
            .map_err(|e| format!("{}: {e}", mini.display()))?;
        if !status.success() {
            return Err(format!("mini-swe-agent exited with {status}"));
        }
        eprintln!(
            "{} model calls; trajectory in {}",
            server.chat_request_count(),
            out.display()
        );
        Ok(())
    })
}
