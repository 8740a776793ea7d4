//! Slice cgroups on this host (root, cgroup v1 or v2): limits apply, an OOM kill is told
//! apart from other deaths, and nothing is left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use runink_engine::isolation::{SliceCgroup, SliceLimits, sweep_abandoned};

/// A process that waits for a line on stdin before running `script`, so it can be moved
/// into a cgroup first.
fn gated(script: &str) -> std::process::Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read go; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn release(child: &mut std::process::Child) {
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
}

/// Whether the cgroup still exists in any hierarchy mounted under /sys/fs/cgroup.
fn exists(path: &str) -> bool {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(Result::ok)
        .any(|h| h.path().join(path).exists())
        || std::path::Path::new("/sys/fs/cgroup").join(path).exists()
}

#[test]
fn a_slice_over_its_memory_limit_is_reported_as_oom_killed() {
    let name = format!("test-oom-{}", std::process::id());
    let cg = SliceCgroup::create(
        &name,
        SliceLimits {
            memory_bytes: Some(64 << 20),
            cpu_millis: Some(500),
            max_processes: Some(64),
        },
    )
    .unwrap();
    let path = cg.path();
    assert!(exists(&path), "{path} was not created");
    // No swap beyond the memory limit (v1: memory + swap; v2: swap alone), where the host
    // accounts swap.
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").join(&path);
    if let Ok(memsw) = std::fs::read_to_string(v1.join("memory.memsw.limit_in_bytes")) {
        assert_eq!(memsw.trim(), (64u64 << 20).to_string());
    }
    let v2 = std::path::Path::new("/sys/fs/cgroup").join(&path);
    if let Ok(swap) = std::fs::read_to_string(v2.join("memory.swap.max")) {
        assert_eq!(swap.trim(), "0");
    }

    // `tail` buffers a line that never ends: it grows until the limit stops it.
    let mut child = gated("exec tail /dev/zero");
    cg.add(child.id()).unwrap();
    release(&mut child);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(cg.oom_killed(), "the kill was not seen as an OOM kill");

    drop(cg);
    assert!(!exists(&path), "{path} was left behind");
}

#[test]
fn a_slice_within_its_limits_ends_normally_and_its_cgroup_goes() {
    let name = format!("test-ok-{}", std::process::id());
    let cg = SliceCgroup::create(
        &name,
        SliceLimits {
            memory_bytes: Some(64 << 20),
            ..SliceLimits::default()
        },
    )
    .unwrap();
    let path = cg.path();
    let mut child = gated("head -c 1000000 /dev/zero > /dev/null");
    cg.add(child.id()).unwrap();
    release(&mut child);
    assert!(child.wait().unwrap().success());
    assert!(!cg.oom_killed());

    // A process still running when the slice's cgroup is dropped is stopped with it.
    let sleeper = gated("exec sleep 600");
    cg.add(sleeper.id()).unwrap();
    drop(cg);
    let mut sleeper = sleeper;
    assert_eq!(sleeper.wait().unwrap().signal(), Some(9));
    assert!(!exists(&path), "{path} was left behind");
}

#[test]
fn a_process_that_does_not_exist_is_a_clear_error() {
    let cg = SliceCgroup::create(
        &format!("test-bad-{}", std::process::id()),
        SliceLimits::default(),
    )
    .unwrap();
    let err = cg.add(u32::MAX - 1).unwrap_err().to_string();
    assert!(err.contains("cannot move process"), "{err}");
}

#[test]
fn a_cgroup_whose_owner_died_is_swept_and_one_whose_owner_lives_is_kept() {
    let limits = SliceLimits {
        memory_bytes: Some(64 << 20),
        cpu_millis: None,
        max_processes: None,
    };
    // An owner that cannot exist (beyond any pid_max), so no process can be it.
    let me = std::process::id();
    let abandoned = SliceCgroup::create(&format!("test-sweep-{me}-o{}", u32::MAX), limits).unwrap();
    let owned = SliceCgroup::create(&format!("test-sweep-{me}-o{me}"), limits).unwrap();
    let (abandoned_path, owned_path) = (abandoned.path(), owned.path());
    // As if the owner had been killed before it could remove it.
    std::mem::forget(abandoned);
    assert!(exists(&abandoned_path));
    // Pools leave young cgroups alone; with no minimum age the abandoned one goes (another
    // test's pool may have swept it already: what counts is that it is gone).
    sweep_abandoned(std::time::Duration::from_secs(3600));
    assert!(
        exists(&abandoned_path),
        "{abandoned_path} was swept while young"
    );
    sweep_abandoned(std::time::Duration::ZERO);
    assert!(!exists(&abandoned_path), "{abandoned_path} was not swept");
    assert!(
        exists(&owned_path),
        "{owned_path} was swept while its owner lives"
    );
    drop(owned);
    assert!(!exists(&owned_path));
}
