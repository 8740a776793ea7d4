//! Slice pools: a slice that never becomes ready, or ends during a run, is an error that
//! names it (with its exit status or signal and its stderr), and dropping a pool ends every
//! slice. The slice program here is a shell script standing in for `runi slice`.

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use runink_engine::slice::SlicePool;

fn sh(script: &str) -> Vec<String> {
    // `--name NAME` lands in $1 $2 after the script's own $0.
    vec!["-c".into(), script.into(), "slice".into()]
}

/// A slice that says it is ready and lives until its lifeline (stdin) closes.
const READY: &str = "echo \"runink-slice ready http://127.0.0.1:1/$2\"; cat >/dev/null";

#[test]
fn ready_slices_report_their_urls_in_order() {
    let pool = SlicePool::launch(Path::new("/bin/sh"), &sh(READY), "t", 3).expect("launch");
    assert_eq!(
        pool.urls(),
        [
            "http://127.0.0.1:1/t-0",
            "http://127.0.0.1:1/t-1",
            "http://127.0.0.1:1/t-2"
        ]
    );
}

#[test]
fn a_slice_that_ends_before_it_is_ready_is_named_with_its_status_and_stderr() {
    let err = SlicePool::launch(
        Path::new("/bin/sh"),
        &sh("echo 'cannot listen: address in use' >&2; exit 3"),
        "q",
        2,
    )
    .err()
    .expect("must fail")
    .to_string();
    assert!(err.contains("slice `q-0`"), "{err}");
    assert!(
        err.contains("exit status 3") && err.contains("address in use"),
        "{err}"
    );
}

#[test]
fn a_missing_program_is_named() {
    let err = SlicePool::launch(Path::new("/nonexistent/runi"), &[], "q", 1)
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("slice `q-0`") && err.contains("/nonexistent/runi"),
        "{err}"
    );
}

#[test]
fn a_slice_killed_during_the_run_is_named_with_the_signal() {
    let mut pool = SlicePool::launch(Path::new("/bin/sh"), &sh(READY), "k", 2).expect("launch");
    pool.check().expect("all alive");
    let (name, pid) = pool.pids()[1].clone();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
    // Wait until it has ended, without reaping it (the pool does that).
    waitid(
        Id::Pid(Pid::from_raw(pid as i32)),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
    )
    .expect("waitid");
    let err = pool.check().expect_err("a dead slice").to_string();
    assert!(err.contains(&format!("slice `{name}`")), "{err}");
    assert!(err.contains("killed by signal 9 (SIGKILL)"), "{err}");
}

#[test]
fn dropping_the_pool_ends_every_slice() {
    let pool = SlicePool::launch(Path::new("/bin/sh"), &sh(READY), "d", 2).expect("launch");
    let pids: Vec<i32> = pool.pids().iter().map(|(_, p)| *p as i32).collect();
    drop(pool);
    for pid in pids {
        // Reaped by the pool: the process no longer exists.
        assert_eq!(
            kill(Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH),
            "slice {pid} still exists"
        );
    }
}
