//! Integration tests of the pipelines against scripted teachers.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used)]

mod web;
