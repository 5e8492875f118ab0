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
    /// Base URL of an OpenAI-compatible server, or `local[:PATH.gguf]`.
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
    /// The HTTP client behind it, for remote teachers.
    pub remote: Option<Arc<OpenAiTeacher>>,
    /// The model name recorded with the data.
    pub model: String,
    /// The base URL or local spec, as given.
    pub url: String,
}

/// The first reachability check's finding that deserves a word to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Nothing to say.
    Ok,
    /// The server lists models, and not this one (the run tries anyway).
    ModelNotListed {
        /// What it lists.
        listed: Vec<String>,
    },
}

impl BuiltTeacher {
    /// Check that a remote server answers and whether it lists the model.
    pub async fn preflight(&self) -> Result<Preflight, TeacherSetupError> {
        let Some(remote) = &self.remote else {
            return Ok(Preflight::Ok);
        };
        match remote.models(Duration::from_secs(15)).await {
            Ok(models) if !models.is_empty() && !models.iter().any(|m| m == &self.model) => {
                Ok(Preflight::ModelNotListed { listed: models })
            }
            Ok(_) => Ok(Preflight::Ok),
            Err(source) => Err(TeacherSetupError::Unreachable {
                url: self.url.clone(),
                source,
            }),
        }
    }
}

/// Whether `spec` names the embedded model rather than a server.
pub fn is_local(spec: &str) -> bool {
    let spec = spec.trim();
    spec == "local" || spec.starts_with("local:")
}

impl TeacherSpec {
    /// Build the teacher (a remote server, or the model in-process), checking the options.
    pub fn build(&self, on_retry: Option<RetryHook>) -> Result<BuiltTeacher, TeacherSetupError> {
        if !(0.0..=2.0).contains(&self.sampling.temperature) {
            return Err(TeacherSetupError::Option(format!(
                "--temperature {}: must be between 0 and 2",
                self.sampling.temperature
            )));
        }
        if is_local(&self.url) {
            return self.build_local();
        }
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
        let mut config = TeacherConfig::new(&self.url, &model);
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
        })
    }

    #[cfg(not(feature = "local"))]
    fn build_local(&self) -> Result<BuiltTeacher, TeacherSetupError> {
        Err(TeacherSetupError::LocalNotBuilt(
            self.url.trim().to_string(),
        ))
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

    /// Built without the `local` feature (`cargo test -p trajforge-pipeline`, which
    /// scripts/test.sh runs on its own), `--teacher local` says why it is not there.
    #[cfg(not(feature = "local"))]
    #[test]
    fn local_without_the_feature_says_so() {
        let err = spec("local", None).build(None).err();
        assert!(
            matches!(&err, Some(TeacherSetupError::LocalNotBuilt(s)) if s == "local"),
            "{err:?}"
        );
    }
}
