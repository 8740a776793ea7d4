//! End-to-end tests: the `runi` binary on the bundled example and on small fixtures,
//! as a user runs it (a project folder as the working directory).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod deps;
mod example;
mod explain;
mod fixtures;
mod herd;
mod journey;
mod slices;
mod support;
