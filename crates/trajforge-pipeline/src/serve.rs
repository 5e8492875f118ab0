//! What `trajforge serve` serves, set up from its options: the embedded model or an
//! upstream OpenAI-compatible server (its model name asked from it when not given, exact
//! token counts with its tokenizer), and the tools the Messages endpoint shows the model.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trajforge_export::StudentTokenizer;
use trajforge_local::{
    Backend, CountError, LocalError, LocalOptions, LocalTeacher, MessagesOptions, ServeOptions,
    TRAINED_ROOT, TokenCounter, ToolsMode, TrainedError, TrainedTools, default_model_path,
};
use trajforge_teacher::{ChatMessage, OpenAiTeacher, TeacherConfig, TeacherError, ToolSpec};

/// The options of `serve`, checked by the CLI's parser.
#[derive(Debug, Clone, Default)]
pub struct ServeSpec {
    /// Pass requests on to this OpenAI-compatible server (several, comma-separated, share the
    /// load) instead of loading a model.
    pub upstream: Option<String>,
    /// The GGUF file (embedded) or the model name sent upstream.
    pub model: Option<PathBuf>,
    /// The upstream model's tokenizer, for exact `count_tokens`.
    pub tokenizer: Option<PathBuf>,
    /// Context size of the embedded model.
    pub ctx: Option<u32>,
    /// CPU threads of the embedded model.
    pub threads: Option<usize>,
    /// Tokens per reply when a request sets no `max_tokens`.
    pub max_tokens: u32,
    /// Largest `max_tokens` passed on from a Messages request.
    pub max_output_tokens: u64,
    /// Model id announced by `/v1/models`.
    pub name: Option<String>,
    /// `--tools trained`: the trained tool set in place of the client's.
    pub trained: bool,
    /// The dataset whose system prompt and tools `trained` uses (built-in ones otherwise).
    pub trained_on: Option<PathBuf>,
}

/// Why `serve` could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServeSetupError {
    /// `--trained-on` without `--tools trained`.
    #[error("--trained-on needs --tools trained")]
    TrainedOnNeedsTrained,
    /// The training dataset could not be read.
    #[error(transparent)]
    TrainedOn(#[from] TrainedError),
    /// The upstream URL is not usable.
    #[error(transparent)]
    Client(TeacherError),
    /// The upstream did not say which models it serves.
    #[error("cannot list the models of {url}: {source}")]
    Models {
        /// The upstream's base URL.
        url: String,
        /// What failed.
        source: TeacherError,
    },
    /// The upstream serves no model.
    #[error("{url} lists no model")]
    NoModel {
        /// The upstream's base URL.
        url: String,
    },
    /// The tokenizer could not be loaded.
    #[error("cannot load the tokenizer: {0}")]
    Tokenizer(#[source] trajforge_export::ExportError),
    /// The embedded model could not be loaded.
    #[error(transparent)]
    Load(#[from] LocalError),
}

/// Everything `serve` needs to start listening.
#[derive(Debug)]
pub struct PreparedServe {
    /// Where requests go.
    pub backend: Backend,
    /// The HTTP server's settings.
    pub options: ServeOptions,
    /// The Messages endpoint's settings.
    pub messages: MessagesOptions,
}

impl PreparedServe {
    /// A line telling the operator what is served at `url`.
    pub fn describe(&self, url: &str) -> String {
        match &self.backend {
            Backend::Local(teacher) => format!(
                "serving {} (context {} tokens) on {url}",
                teacher.model_name(),
                teacher.n_ctx()
            ),
            Backend::Upstream { client, counter } => format!(
                "serving {} from {} on {url} (Messages API; token counts {})",
                client.config().model,
                client.server_urls().join(","),
                if counter.is_some() {
                    "exact"
                } else {
                    "estimated: pass --tokenizer"
                },
            ),
        }
    }
}

/// Exact prompt counts of an upstream model with its tokenizer.
struct Counter(StudentTokenizer);

impl TokenCounter for Counter {
    fn count(&self, messages: &[ChatMessage], tools: &[ToolSpec]) -> Result<u64, CountError> {
        self.0
            .count_prompt(messages, tools)
            .map(|n| n as u64)
            .map_err(|e| CountError(Box::new(e)))
    }
}

/// Load the model (or reach the upstream) and settle the tools mode.
pub async fn prepare_serve(spec: ServeSpec) -> Result<PreparedServe, ServeSetupError> {
    let tools = match (spec.trained, &spec.trained_on) {
        (false, None) => ToolsMode::Passthrough,
        (false, Some(_)) => return Err(ServeSetupError::TrainedOnNeedsTrained),
        (true, Some(dir)) => ToolsMode::Trained(TrainedTools::from_dataset(dir)?),
        (true, None) => ToolsMode::Trained(TrainedTools {
            system_prompt: trajforge_agent::LoopConfig::default().system_prompt,
            tools: trajforge_repo_env::RepoEnvironment::tool_specs(),
            root: TRAINED_ROOT.to_string(),
        }),
    };
    let backend = match &spec.upstream {
        Some(url) => upstream(url, &spec).await?,
        None => {
            let path = spec.model.clone().unwrap_or_else(default_model_path);
            let options = LocalOptions {
                n_ctx: spec.ctx,
                threads: spec.threads,
                max_tokens: spec.max_tokens.max(1),
                ..LocalOptions::default()
            };
            Backend::Local(Arc::new(LocalTeacher::load(&path, options)?))
        }
    };
    Ok(PreparedServe {
        backend,
        options: ServeOptions {
            model_name: spec.name,
            ..ServeOptions::default()
        },
        messages: MessagesOptions {
            tools,
            max_output_tokens: Some(spec.max_output_tokens.max(1)),
        },
    })
}

/// The upstream client, its model name (asked from the server when not given) and counter.
async fn upstream(url: &str, spec: &ServeSpec) -> Result<Backend, ServeSetupError> {
    let given = spec
        .model
        .as_ref()
        .map(|m| m.to_string_lossy().into_owned());
    // Several servers of the model, comma-separated, share the load as a run's teachers do.
    let mut servers = url.split(',').map(str::trim).filter(|u| !u.is_empty());
    let mut config = TeacherConfig::new(
        servers.next().unwrap_or_default(),
        given.clone().unwrap_or_default(),
    );
    config.more_servers = servers.map(String::from).collect();
    let mut client = OpenAiTeacher::new(config.clone()).map_err(ServeSetupError::Client)?;
    if given.is_none() {
        let listed = client
            .models(Duration::from_secs(10))
            .await
            .map_err(|source| ServeSetupError::Models {
                url: url.to_string(),
                source,
            })?;
        config.model = listed
            .into_iter()
            .next()
            .ok_or_else(|| ServeSetupError::NoModel {
                url: url.to_string(),
            })?;
        client = OpenAiTeacher::new(config).map_err(ServeSetupError::Client)?;
    }
    let counter = match &spec.tokenizer {
        Some(path) => Some(Arc::new(Counter(
            StudentTokenizer::load(path).map_err(ServeSetupError::Tokenizer)?,
        )) as Arc<dyn TokenCounter>),
        None => None,
    };
    Ok(Backend::Upstream {
        client: Arc::new(client),
        counter,
    })
}
