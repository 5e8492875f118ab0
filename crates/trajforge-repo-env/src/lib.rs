//! A repository's environment: SWE-agent's `bash`, `str_replace_editor` and `submit` tools
//! in a sandbox session, implementing [`trajforge_agent::Environment`].
//!
//! - [`RepoEnvironment`]: the tools over one episode's sandboxed shell
//!   ([`trajforge_sandbox::Session`]); the host never touches the workspace directly.
//! - [`editor`]: the `str_replace_editor` logic, pure over a [`editor::Files`] seam.
//! - [`RepoEnvError`]: why a call into the sandboxed shell failed.

pub mod editor;
pub mod error;
pub mod repo;
pub mod workdir;

pub use error::RepoEnvError;
pub use repo::RepoEnvironment;
