//! The teacher a run talks to, built from its options: an OpenAI-compatible server, or the
//! embedded model in-process (`local[:PATH.gguf]`, with the `local` cargo feature).

use std::sync::Arc;
use std::time::Duration;

use trajforge_teacher::{
    OpenAiTeacher, RequestLimiter, RetryHook, Sampling, Teacher, TeacherConfig, TeacherError,
    ToolMode,
};

/// How to reach the teacher; the CLI's teacher options, checked.
#[derive(Debug, Clone)]
pub struct TeacherSpec {
    /// Base URL of an OpenAI-compatible server, several separated by commas (servers of the
    /// same model sharing the load), or `local[:PATH.gguf]`.
    pub url: String,
    /// The served model's name (defaults to the file's for a local model).
    pub model: Option<String>,
    /// How tool calls travel.
    pub tool_mode: ToolMode,
    /// Sampling of every call.
    pub sampling: Sampling,
    /// Requests in flight at most.
    pub max_requests: usize,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries of a failed request.
    pub retries: u32,
    /// First wait before a retry, in seconds.
    pub backoff: f64,
}

/// Why the teacher could not be built or reached.
#[derive(Debug, thiserror::Error)]
pub enum TeacherSetupError {
    /// An option is out of range.
    #[error("{0}")]
    Option(String),
    /// A server URL was given without a model name.
    #[error("--model is required with a server URL")]
    ModelRequired,
    /// The HTTP client could not be configured (bad URL).
    #[error(transparent)]
    Client(TeacherError),
    /// The server did not answer the reachability check.
    #[error("cannot reach the teacher: {source}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What failed.
        source: TeacherError,
    },
    /// The local model could not be loaded.
    #[cfg(feature = "local")]
    #[error(transparent)]
    Local(#[from] trajforge_local::LocalError),
    /// `--teacher local` in a build without the embedded model.
    #[error(
        "this trajforge was built without the embedded model (cargo feature `local`), so `--teacher {0}` is not available"
    )]
    LocalNotBuilt(String),
}

/// A teacher ready to use: any implementation, plus the HTTP client when it is one (for the
/// reachability check).
pub struct BuiltTeacher {
    /// The teacher.
    pub teacher: Arc<dyn Teacher>,
    /// The HTTP client behind it (all its servers), for remote teachers.
    pub remote: Option<Arc<OpenAiTeacher>>,
    /// The model name recorded with the data.
    pub model: String,
    /// The base URL or local spec, as given.
    pub url: String,
    /// What the teacher is asked with, which decides the data (stored with a shared run).
    pub settings: TeacherSettings,
}

/// The teacher options that decide a run's data besides the model: sampling and how tool
/// calls travel. A shared run stores them, and its workers use them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TeacherSettings {
    /// Sampling of every call.
    pub sampling: Sampling,
    /// How tool calls travel.
    pub tool_mode: ToolMode,
}

/// A reachability check's finding that deserves a word to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// A server lists models, and not this one (the run tries anyway).
    ModelNotListed {
        /// The server.
        url: String,
        /// What it lists.
        listed: Vec<String>,
    },
    /// One of several servers does not answer; the run starts on the others and probes it
    /// again later.
    ServerDown {
        /// The server.
        url: String,
        /// Why, on one line.
        error: String,
    },
}

impl BuiltTeacher {
    /// Check that the remote servers answer and whether they list the model: an error when
    /// none answers, findings to tell the user otherwise.
    pub async fn preflight(&self) -> Result<Vec<Preflight>, TeacherSetupError> {
        let Some(remote) = &self.remote else {
            return Ok(Vec::new());
        };
        let urls = remote.server_urls();
        // Checked at once, so a down server costs one timeout whatever the number of servers.
        let checks: Vec<_> = (0..urls.len())
            .map(|i| {
                let remote = Arc::clone(remote);
                tokio::spawn(async move { remote.models_of(i, Duration::from_secs(15)).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(checks.len());
        for check in checks {
            answers.push(check.await.unwrap_or_else(|e| {
                Err(TeacherError::Config(format!(
                    "reachability check failed: {e}"
                )))
            }));
        }
        let answers_len = answers.len();
        let mut findings = Vec::new();
        let mut first_error = None;
        for (url, answer) in urls.into_iter().zip(answers) {
            match answer {
                Ok(models) if !models.is_empty() && !models.iter().any(|m| m == &self.model) => {
                    findings.push(Preflight::ModelNotListed {
                        url,
                        listed: models,
                    });
                }
                Ok(_) => {}
                Err(source) => {
                    findings.push(Preflight::ServerDown {
                        url: url.clone(),
                        error: source.to_string(),
                    });
                    first_error.get_or_insert((url, source));
                }
            }
        }
        let down = findings
            .iter()
            .filter(|f| matches!(f, Preflight::ServerDown { .. }))
            .count();
        match first_error {
            Some((url, source)) if down == answers_len => {
                Err(TeacherSetupError::Unreachable { url, source })
            }
            _ => Ok(findings),
        }
    }
}

/// Whether `spec` names the embedded model rather than a server.
pub fn is_local(spec: &str) -> bool {
    let spec = spec.trim();
    spec == "local" || spec.starts_with("local:")
}

impl TeacherSpec {
    /// The options of this spec that decide the data.
    pub fn settings(&self) -> TeacherSettings {
        TeacherSettings {
            sampling: self.sampling.clone(),
            tool_mode: self.tool_mode,
        }
    }

    /// The servers (or the one `local` spec) named by `url`, in order, without blanks.
    pub fn servers(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// Build the teacher (a remote server, or the model in-process), checking the options.
    pub fn build(&self, on_retry: Option<RetryHook>) -> Result<BuiltTeacher, TeacherSetupError> {
        if !(0.0..=2.0).contains(&self.sampling.temperature) {
            return Err(TeacherSetupError::Option(format!(
                "--temperature {}: must be between 0 and 2",
                self.sampling.temperature
            )));
        }
        let urls = self.servers();
        if urls.iter().any(|u| is_local(u)) {
            if urls.len() > 1 {
                return Err(TeacherSetupError::Option(format!(
                    "--teacher {}: the embedded model (`local`) cannot be combined with servers",
                    self.url.trim()
                )));
            }
            return self.build_local();
        }
        let Some((first, more)) = urls.split_first() else {
            return Err(TeacherSetupError::Option(
                "--teacher: give a server URL (several separated by commas) or `local`".into(),
            ));
        };
        let model = self.model.clone().ok_or(TeacherSetupError::ModelRequired)?;
        if self.max_requests == 0 {
            return Err(TeacherSetupError::Option(
                "--max-requests must be at least 1".into(),
            ));
        }
        if !(0.0..=600.0).contains(&self.backoff) {
            return Err(TeacherSetupError::Option(format!(
                "--backoff {}: must be between 0 and 600 seconds",
                self.backoff
            )));
        }
        let mut config = TeacherConfig::new(*first, &model);
        config.more_servers = more.iter().map(|u| u.to_string()).collect();
        config.mode = self.tool_mode;
        config.sampling = self.sampling.clone();
        config.request_timeout = self.request_timeout.max(Duration::from_secs(1));
        config.max_retries = self.retries;
        config.backoff_base = Duration::from_secs_f64(self.backoff);
        config.limiter = Arc::new(RequestLimiter::new(self.max_requests));
        config.on_retry = on_retry;
        let remote = Arc::new(OpenAiTeacher::new(config).map_err(TeacherSetupError::Client)?);
        Ok(BuiltTeacher {
            teacher: Arc::clone(&remote) as Arc<dyn Teacher>,
            remote: Some(remote),
            model,
            url: self.url.clone(),
            settings: self.settings(),
        })
    }

    #[cfg(feature = "local")]
    fn build_local(&self) -> Result<BuiltTeacher, TeacherSetupError> {
        let path = trajforge_local::parse_local_spec(&self.url)
            .unwrap_or_else(trajforge_local::default_model_path);
        let options = trajforge_local::LocalOptions {
            sampling: self.sampling.clone(),
            ..trajforge_local::LocalOptions::default()
        };
        let local = trajforge_local::LocalTeacher::load(&path, options)?;
        let model = self
            .model
            .clone()
            .unwrap_or_else(|| local.model_name().to_string());
        Ok(BuiltTeacher {
            teacher: Arc::new(local),
            remote: None,
            model,
            url: self.url.clone(),
            settings: self.settings(),
        })
    }

    #[cfg(not(feature = "local"))]
    fn build_local(&self) -> Result<BuiltTeacher, TeacherSetupError> {
        Err(TeacherSetupError::local_not_built(&self.url))
    }
}

impl TeacherSetupError {
    /// What `--teacher URL` (`local`, `local:PATH`) gets from a build without the embedded model.
    ///
    /// Built in every configuration so that its tests, and the CLI's hint, run in the default one.
    pub fn local_not_built(url: &str) -> Self {
        Self::LocalNotBuilt(url.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str, model: Option<&str>) -> TeacherSpec {
        TeacherSpec {
            url: url.into(),
            model: model.map(String::from),
            tool_mode: ToolMode::Native,
            sampling: Sampling::default(),
            max_requests: 4,
            request_timeout: Duration::from_secs(5),
            retries: 0,
            backoff: 1.0,
        }
    }

    #[test]
    fn local_specs_are_told_apart_from_urls() {
        assert!(is_local("local"));
        assert!(is_local(" local:/m/x.gguf "));
        assert!(!is_local("http://127.0.0.1:8000/v1"));
        assert!(!is_local("localhost:8000"));
    }

    #[test]
    fn bad_options_are_refused_before_anything_is_built() {
        let err = spec("http://127.0.0.1:9/v1", None).build(None).err();
        assert!(
            matches!(err, Some(TeacherSetupError::ModelRequired)),
            "{err:?}"
        );
        let mut s = spec("http://127.0.0.1:9/v1", Some("m"));
        s.max_requests = 0;
        assert!(matches!(
            s.build(None).err(),
            Some(TeacherSetupError::Option(_))
        ));
        let mut s = spec("http://127.0.0.1:9/v1", Some("m"));
        s.sampling.temperature = 3.0;
        let err = s.build(None).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("--temperature 3: must be between 0 and 2")
        );
        let built = spec("http://127.0.0.1:9/v1", Some("m")).build(None);
        assert!(built.is_ok_and(|b| b.remote.is_some() && b.model == "m"));
    }

    #[test]
    fn a_comma_separated_teacher_is_several_servers_and_local_stays_alone() {
        let built = spec(
            " http://127.0.0.1:9/v1 , http://127.0.0.1:10/v1/,",
            Some("m"),
        )
        .build(None)
        .expect("two servers");
        let remote = built.remote.expect("remote");
        assert_eq!(
            remote.server_urls(),
            ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]
        );
        let err = spec("http://127.0.0.1:9/v1,local", Some("m"))
            .build(None)
            .err();
        assert!(
            matches!(&err, Some(TeacherSetupError::Option(m)) if m.contains("cannot be combined")),
            "{err:?}"
        );
        let err = spec(" , ", Some("m")).build(None).err();
        assert!(matches!(err, Some(TeacherSetupError::Option(_))), "{err:?}");
    }

    /// Built without the `local` feature, `--teacher local` says why it is not there (the
    /// dispatch to this error is compiled by scripts/test.sh's `cargo check --no-default-features`).
    #[test]
    fn local_without_the_feature_says_so() {
        let err = TeacherSetupError::local_not_built(" local:/m/x.gguf ");
        assert!(
            matches!(&err, TeacherSetupError::LocalNotBuilt(s) if s == "local:/m/x.gguf"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "this trajforge was built without the embedded model (cargo feature `local`), so \
             `--teacher local:/m/x.gguf` is not available"
        );
    }
}
