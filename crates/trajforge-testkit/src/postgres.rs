//! A throwaway PostgreSQL cluster for the scale-out store's tests and benchmark: one per
//! test process, started on first use (initdb into a temporary folder, as an unprivileged
//! user when running as root, listening only on a Unix socket in that folder), with a fresh
//! database per caller. A watcher stops the server and removes the folder once the process
//! that started it exits, so nothing depends on (or is left behind on) the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::run_ok;

/// The superuser of the throwaway cluster.
const USER: &str = "trajforge";

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    next: AtomicUsize,
    /// The account the server runs as (when we are root).
    user: Option<(String, String)>,
}

/// The cluster of this process, started on first use; panics with the reason when
/// PostgreSQL's server programs are missing (scripts/setup.sh installs them).
pub fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| PgCluster::start().unwrap_or_else(|e| panic!("{e}")))
}

/// PostgreSQL's server programs: $TRAJFORGE_PG_BIN, else the newest /usr/lib/postgresql/*/bin.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TRAJFORGE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// `(uid, gid)` of the account the server runs as when we are root.
fn unprivileged() -> Option<(String, String)> {
    let out = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let out = Command::new("id").arg("-u").arg(name).output().ok()?;
        if out.status.success() {
            let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let gid = Command::new("id").arg("-g").arg(name).output().ok()?;
            return Some((uid, String::from_utf8_lossy(&gid.stdout).trim().to_string()));
        }
    }
    None
}

/// `program args…` run as `user` when given.
fn as_user(user: &Option<(String, String)>, program: &Path) -> Command {
    match user {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl PgCluster {
    /// A cluster of the caller's own, beside the shared one (a test that restarts its server
    /// must not disturb the others); panics as [`cluster`] does.
    pub fn private() -> PgCluster {
        PgCluster::start().unwrap_or_else(|e| panic!("{e}"))
    }

    fn start() -> Result<PgCluster, String> {
        let bin = bin_dir().ok_or(
            "PostgreSQL server programs not found (/usr/lib/postgresql/*/bin/initdb): run scripts/setup.sh, or set TRAJFORGE_PG_BIN",
        )?;
        let user = unprivileged();
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "trajforge-pg-{}-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some((uid, gid)) = &user {
            let out = Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(&dir)
                .output()
                .map_err(|e| format!("chown: {e}"))?;
            if !out.status.success() {
                return Err(format!("chown: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        let data = dir.join("data");
        let out = as_user(&user, &bin.join("initdb"))
            .args(["--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"])
            .arg(format!("--username={USER}"))
            .arg("-D")
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let cluster = PgCluster {
            bin,
            dir,
            next: AtomicUsize::new(0),
            user,
        };
        cluster.pg_ctl("start")?;
        cluster.watch()?;
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// `pg_ctl ACTION` on the cluster (start, stop), waiting for it to finish.
    fn pg_ctl(&self, action: &str) -> Result<(), String> {
        let options = format!(
            "-k {dir} -c listen_addresses='' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB",
            dir = self.dir.display()
        );
        let out = as_user(&self.user, &self.bin.join("pg_ctl"))
            .arg(action)
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-o", &options, "-m", "fast", "-w"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl {action}: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl {action}: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Stop the server (fast: sessions are cut), leave it down for `down`, start it again:
    /// a database restart under running clients.
    pub fn restart(&self, down: Duration) {
        self.pg_ctl("stop").unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(down);
        self.pg_ctl("start").unwrap_or_else(|e| panic!("{e}"));
        self.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    }

    /// A watcher that stops the server (whichever postmaster runs it now) and removes the
    /// folder when this process is gone.
    fn watch(&self) -> Result<(), String> {
        let script = format!(
            "while [ -d /proc/{parent} ]; do sleep 0.5; done; \
             {pg_ctl} stop -D {data} -m fast -w >/dev/null 2>&1; rm -rf {dir}",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.dir.join("data").display(),
            dir = self.dir.display(),
            parent = std::process::id(),
        );
        let mut sh = as_user(&self.user, Path::new("/bin/sh"));
        sh.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        sh.spawn().map_err(|e| format!("watcher: {e}"))?;
        Ok(())
    }

    /// Wait until the server accepts connections.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .arg("-h")
                .arg(&self.dir)
                .arg("-U")
                .arg(USER)
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                return Err(format!("postgres did not start within 30 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The folder holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        let host: String = self
            .dir
            .display()
            .to_string()
            .replace('%', "%25")
            .replace('/', "%2F");
        format!("postgres://{USER}@{host}/{db}")
    }

    /// A new empty database, named after `label`; its URL.
    pub fn fresh_database(&self, label: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let db = format!("t{n}_{clean}");
        run_ok(
            Command::new(self.bin.join("createdb"))
                .arg("-h")
                .arg(&self.dir)
                .arg("-U")
                .arg(USER)
                .arg(&db),
            &format!("createdb {db}"),
        );
        self.url(&db)
    }

    /// The URL of database `db_url` for a new login that may only read run `run`: `USAGE` on
    /// its schema and `SELECT` on the tables it has now, no right to create anything.
    pub fn reader_url(&self, db_url: &str, run: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let role = format!("reader_{n}");
        self.psql(
            db_url,
            &format!(
                "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA trajforge_run_{run} TO {role};
                 GRANT SELECT ON ALL TABLES IN SCHEMA trajforge_run_{run} TO {role};"
            ),
        );
        let prefix = format!("postgres://{USER}@");
        let rest = db_url.strip_prefix(&prefix).expect("a URL of this cluster");
        format!("postgres://{role}@{rest}")
    }

    /// Run SQL on database `db` with psql (tests that inspect or break a store directly).
    pub fn psql(&self, db_url: &str, sql: &str) -> String {
        let out = run_ok(
            Command::new(self.bin.join("psql")).arg(db_url).args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ]),
            "psql",
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}
