//! The embedded Barn as commands use it: open, read or write, close.
//!
//! Every command opens Barn for as short a time as it can (RocksDB lets one process hold
//! the state directory; another waits up to [`runink_cluster::barn::OPEN_WAIT`]), so a long
//! `runi run` does not lock out `runi status` in another terminal.

use std::time::Duration;

use anyhow::anyhow;
use runink_cluster::state::{Command, Response};
use runink_cluster::{Barn, StateMachineData};

use crate::cli::Global;
use crate::exit::Failure;

/// Opens the embedded Barn in `--home`.
pub async fn open(global: &Global) -> Result<Barn, Failure> {
    Barn::open(&global.home).await.map_err(Failure::run)
}

/// Opens the embedded Barn, waiting up to `wait` for another process to let go.
pub async fn open_waiting(global: &Global, wait: Duration) -> Result<Barn, Failure> {
    Barn::open_waiting(&global.home, wait)
        .await
        .map_err(Failure::run)
}

pub async fn close(barn: Barn) -> Result<(), Failure> {
    barn.shutdown().await.map_err(Failure::run)
}

/// A linearizable read.
pub async fn read<T>(barn: &Barn, f: impl FnOnce(&StateMachineData) -> T) -> Result<T, Failure> {
    barn.read(f).await.map_err(Failure::run)
}

/// Opens Barn, reads, closes. Where no Barn was ever made (`--home` holds none), reads
/// the empty state instead of creating one: a command that only reads leaves no
/// `.runink/` behind in a directory it was run in by mistake.
pub async fn read_once<T>(
    global: &Global,
    f: impl FnOnce(&StateMachineData) -> T,
) -> Result<T, Failure> {
    if !Barn::exists(&global.home) {
        return Ok(f(&StateMachineData::default()));
    }
    let barn = open(global).await?;
    let value = read(&barn, f).await;
    close(barn).await?;
    value
}

/// Proposes one command on an open Barn; a rejected command is the user's error (exit 2).
pub async fn propose(barn: &Barn, command: Command) -> Result<(), Failure> {
    match barn.write(command).await.map_err(Failure::run)? {
        Response::Rejected(why) => Err(Failure::input(anyhow!("{why}"))),
        Response::Applied => Ok(()),
    }
}

/// Opens Barn, proposes one command, closes.
pub async fn write(global: &Global, command: Command) -> Result<(), Failure> {
    let barn = open(global).await?;
    let result = propose(&barn, command).await;
    close(barn).await?;
    result
}
