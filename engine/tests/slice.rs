//! Slice pools: a slice that never becomes ready, or ends during a run, is an error that
//! names it (with its exit status or signal and its stderr), and dropping a pool ends every
//! slice. The slice program here is a shell script standing in for `runi slice`.

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use runink_engine::isolation::SliceLimits;
use runink_engine::slice::{Isolation, SlicePool};

fn sh(script: &str) -> Vec<String> {
    // `--name NAME` lands in $1 $2 after the script's own $0.
    vec!["-c".into(), script.into(), "slice".into()]
}

/// A slice that says it is ready and lives until its lifeline (stdin) closes; gated (a
/// third argument, `--gated`), it first waits for its go line.
const READY: &str = "[ \"$3\" = --gated ] && read go; \
    echo \"runink-slice ready http://127.0.0.1:1/$2\"; cat >/dev/null";

#[test]
fn ready_slices_report_their_urls_in_order() {
    let pool = SlicePool::launch(
        Path::new("/bin/sh"),
        &sh(READY),
        "t",
        3,
        &Isolation::default(),
    )
    .expect("launch");
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
        &Isolation::default(),
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
fn a_slice_that_prints_something_else_is_stopped_and_named() {
    // It prints a wrong first line and would then wait forever for its lifeline.
    let err = SlicePool::launch(
        Path::new("/bin/sh"),
        &sh("echo 'listening on 127.0.0.1:9'; cat >/dev/null"),
        "w",
        1,
        &Isolation::default(),
    )
    .err()
    .expect("must fail")
    .to_string();
    assert!(err.contains("slice `w-0`"), "{err}");
    assert!(
        err.contains("printed `listening on 127.0.0.1:9` instead of its ready line"),
        "{err}"
    );
}

#[test]
fn a_missing_program_is_named() {
    let err = SlicePool::launch(
        Path::new("/nonexistent/runi"),
        &[],
        "q",
        1,
        &Isolation::default(),
    )
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
    let mut pool = SlicePool::launch(
        Path::new("/bin/sh"),
        &sh(READY),
        "k",
        2,
        &Isolation::default(),
    )
    .expect("launch");
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
    let pool = SlicePool::launch(
        Path::new("/bin/sh"),
        &sh(READY),
        "d",
        2,
        &Isolation::default(),
    )
    .expect("launch");
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

fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup file")
}

fn memory_limited(bytes: u64) -> Isolation {
    Isolation {
        limits: Some(SliceLimits {
            memory_bytes: Some(bytes),
            ..SliceLimits::default()
        }),
        allow_unisolated: false,
    }
}

#[test]
fn each_slice_runs_in_its_own_cgroup_which_goes_with_the_pool() {
    let pool = SlicePool::launch(
        Path::new("/bin/sh"),
        &sh(READY),
        "cg",
        2,
        &memory_limited(256 << 20),
    )
    .expect("launch");
    assert!(pool.warnings().is_empty(), "{:?}", pool.warnings());
    let pids = pool.pids();
    for (name, pid) in &pids {
        let groups = cgroup_of(*pid);
        assert!(
            groups.contains(&format!("runink/{name}-{pid}")),
            "{name}: {groups}"
        );
    }
    drop(pool);
    for (name, pid) in &pids {
        let leftovers: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
            .expect("cgroup fs")
            .filter_map(Result::ok)
            .map(|h| h.path().join("runink"))
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}-{pid}-o")))
            })
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    }
}

#[test]
fn a_slice_over_its_memory_limit_is_named_as_oom_killed() {
    // After its go line the slice says it is ready, then reads 200 MB into a shell variable:
    // far over its 32 MiB limit.
    let greedy = "read go; echo \"runink-slice ready http://127.0.0.1:1/$2\"; \
        x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}";
    let mut pool = SlicePool::launch(
        Path::new("/bin/sh"),
        &sh(greedy),
        "oom",
        1,
        &memory_limited(32 << 20),
    )
    .expect("launch");
    let (name, pid) = pool.pids()[0].clone();
    waitid(
        Id::Pid(Pid::from_raw(pid as i32)),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
    )
    .expect("waitid");
    let err = pool.check().expect_err("an OOM-killed slice").to_string();
    assert!(err.contains(&format!("slice `{name}`")), "{err}");
    assert!(
        err.contains("was OOM-killed") && err.contains("33554432 bytes"),
        "{err}"
    );
}

#[test]
fn a_slice_killed_by_its_memory_limit_before_it_is_ready_says_so() {
    // Over its 32 MiB limit before the ready line (as a real slice under a tiny
    // `@requires(memory=)` is): the launch names the OOM kill, not a bare SIGKILL.
    let greedy = "read go; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}";
    let err = SlicePool::launch(
        Path::new("/bin/sh"),
        &sh(greedy),
        "oomstart",
        1,
        &memory_limited(32 << 20),
    )
    .err()
    .expect("the launch fails")
    .to_string();
    assert!(
        err.contains("was OOM-killed before it was ready") && err.contains("33554432 bytes"),
        "{err}"
    );
}
