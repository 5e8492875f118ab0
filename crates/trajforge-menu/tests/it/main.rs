//! Integration tests of the menus, in one test binary.

mod builtin;
mod file;
mod fuzz;
