//! Starting the slice processes a command's plans run in (`runi sql --slices`,
//! `runi run`): how many, with which limits, and how a failure caused by a dead slice is
//! said.

use anyhow::anyhow;
use runink_cluster::state::ResourceQuotas;
use runink_engine::isolation::SliceLimits;
use runink_engine::slice::{Isolation, SlicePool};

use crate::exit::Failure;

/// How long a failed plan waits to see whether a slice died (and which).
pub const DEAD_SLICE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Processes a slice may run (itself and what it starts).
const SLICE_MAX_PROCESSES: u64 = 1024;

/// What a herd allows the slices of one command, and what one slice asks for
/// (`@requires`, per slice: a slice is what a Kubernetes user would call a pod).
#[derive(Clone, Copy, Debug, Default)]
pub struct Budget {
    pub slices_max: Option<u32>,
    /// The herd's CPU, thousandths of a core, for all its slices together.
    pub herd_cpu_millis: Option<u64>,
    /// The herd's memory for all its slices together.
    pub herd_memory_bytes: Option<u64>,
    /// CPU one slice asks for.
    pub slice_cpu_millis: Option<u64>,
    /// Memory one slice asks for.
    pub slice_memory_bytes: Option<u64>,
    /// The herd forbids running slices unisolated.
    pub isolation_required: bool,
}

impl Budget {
    /// The herd's quotas, and what each slice asks for (`@requires`).
    pub fn new(
        quotas: &ResourceQuotas,
        requires_cpu: Option<u64>,
        requires_memory: Option<u64>,
    ) -> Self {
        Self {
            slices_max: quotas.slices_max,
            herd_cpu_millis: quotas.cpu_millis,
            herd_memory_bytes: quotas.memory_bytes,
            slice_cpu_millis: requires_cpu,
            slice_memory_bytes: requires_memory,
            isolation_required: quotas.isolation_required,
        }
    }

    /// The herd's quotas, and what each slice of a compiled plan asks for (its
    /// `@requires(cpu=, memory=)`).
    pub fn for_plan(quotas: &ResourceQuotas, requires: &runink_planner::dag::Resources) -> Self {
        use runink_cluster::herd::{parse_bytes, parse_cpu_millis};
        Self::new(
            quotas,
            requires.cpu.as_deref().and_then(parse_cpu_millis),
            requires.memory.as_deref().and_then(parse_bytes),
        )
    }

    /// Which limits fit no slice, said with their numbers.
    fn short_of(&self) -> Vec<String> {
        let mut short = Vec::new();
        if self.slices_max == Some(0) {
            short.push("slices_max = 0".to_string());
        }
        if let (Some(herd), Some(each)) = (self.herd_cpu_millis, self.slice_cpu_millis)
            && each > herd
        {
            short.push(format!(
                "@requires(cpu=) asks {} core(s) per slice, the herd's cpu_limit is {}",
                each as f64 / 1000.0,
                herd as f64 / 1000.0
            ));
        }
        if let (Some(herd), Some(each)) = (self.herd_memory_bytes, self.slice_memory_bytes)
            && each > herd
        {
            short.push(format!(
                "@requires(memory=) asks {} MiB per slice, the herd's memory_limit is {} MiB",
                each >> 20,
                herd >> 20
            ));
        }
        if short.is_empty() {
            short.push("slices_max, cpu_limit, memory_limit and @requires".to_string());
        }
        short
    }

    /// How many slices of what each asks for fit in the herd's quota (`None`: no limit).
    fn fit(&self) -> Option<usize> {
        let fit = |total: Option<u64>, each: Option<u64>| match (total, each) {
            (Some(t), Some(e)) if e > 0 => Some((t / e) as usize),
            _ => None,
        };
        [
            self.slices_max.map(|m| m as usize),
            fit(self.herd_cpu_millis, self.slice_cpu_millis),
            fit(self.herd_memory_bytes, self.slice_memory_bytes),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// As many slices as there are cores, or fewer if the herd's quota fits fewer; `None`
    /// when it fits none.
    pub fn auto(&self) -> Option<usize> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = self.fit().map_or(cores, |f| f.min(cores));
        (count > 0).then_some(count)
    }

    /// `wanted` slices, or fewer if the herd's quota fits fewer (said on stderr); an error
    /// if it fits none.
    pub fn count(&self, herd: &str, wanted: usize, instead: &str) -> Result<usize, Failure> {
        let count = match self.fit() {
            Some(fit) if wanted > fit => {
                if fit > 0 {
                    eprintln!(
                        "note: the quota of herd `{herd}` fits {fit} slice(s) (slices_max, cpu_limit, \
                         memory_limit and @requires); using {fit}"
                    );
                }
                fit
            }
            _ => wanted,
        };
        if count == 0 {
            return Err(Failure::input(anyhow!(
                "the quota of herd `{herd}` fits no slice ({}); {instead}",
                self.short_of().join("; ")
            )));
        }
        Ok(count)
    }

    /// The limits of each of `count` slices: what a slice asks for, else an equal share of
    /// the herd's quota.
    pub fn limits(&self, count: usize) -> SliceLimits {
        let share = |total: Option<u64>| total.map(|t| (t / count.max(1) as u64).max(1));
        SliceLimits {
            memory_bytes: self.slice_memory_bytes.or(share(self.herd_memory_bytes)),
            cpu_millis: self.slice_cpu_millis.or(share(self.herd_cpu_millis)),
            max_processes: Some(SLICE_MAX_PROCESSES),
        }
    }
}

/// Starts `count` slices named `PREFIX-I`, each in its own cgroup with `budget`'s limits
/// and in new namespaces. Where the host cannot isolate them they run unisolated and that
/// is said once on stderr — unless the herd requires isolation: then the launch fails.
pub fn launch(
    herd: &str,
    prefix: &str,
    count: usize,
    budget: &Budget,
) -> Result<SlicePool, Failure> {
    let limits = budget.limits(count);
    let isolation = Isolation {
        limits: Some(limits),
        allow_unisolated: !budget.isolation_required,
    };
    let program = std::env::current_exe()
        .map_err(|e| Failure::run(anyhow!("cannot find the runi program to start slices: {e}")))?;
    let namespaces = if budget.isolation_required {
        "require"
    } else {
        "try"
    };
    let mut args = vec![
        "slice".to_string(),
        "--namespaces".into(),
        namespaces.into(),
    ];
    if let Some(bytes) = limits.memory_bytes {
        // DataFusion's pool stays under the cgroup limit, so operators spill before the
        // kernel kills the slice.
        args.extend(["--memory".into(), (bytes / 4 * 3).to_string()]);
    }
    let pool = SlicePool::launch(&program, &args, prefix, count, &isolation).map_err(|e| {
        if budget.isolation_required {
            Failure::run(anyhow!(
                "{e} (herd `{herd}` requires isolation: isolation = \"required\")"
            ))
        } else {
            Failure::run(anyhow!("{e}"))
        }
    })?;
    for w in pool.warnings() {
        eprintln!("WARNING: {w}; slices of herd `{herd}` run unisolated");
    }
    Ok(pool)
}

/// The failure of a plan that ran on `pool`: the slice that died, if one did (waiting up
/// to [`DEAD_SLICE_GRACE`] to know), else `message`.
pub fn failure_message(pool: &mut SlicePool, message: String) -> String {
    match pool.check_within(DEAD_SLICE_GRACE) {
        Err(dead) => dead.to_string(),
        Ok(()) => without_pipe_relays(message),
    }
}

/// A slice's error reaches `runi run` through the pipes it wrote, each adding
/// ``pipe `/dev/shm/…`: the writer failed: ``; the user's error is what the slice said.
fn without_pipe_relays(mut message: String) -> String {
    const RELAY: &str = "`: the writer failed: ";
    while let Some(start) = message.find("pipe `/dev/shm/") {
        let Some(end) = message[start..].find(RELAY) else {
            break;
        };
        message.replace_range(start..start + end + RELAY.len(), "");
    }
    message
}

#[cfg(test)]
mod tests {
    #[test]
    fn pipe_relays_are_dropped_from_slice_errors() {
        assert_eq!(
            super::without_pipe_relays(
                "pipe `/dev/shm/runink-x-1`: the writer failed: pipe `/dev/shm/runink-x-2`: the writer failed: source `d`: bad".into()
            ),
            "source `d`: bad"
        );
        assert_eq!(
            super::without_pipe_relays("pipe `/dev/shm/x`: broken".into()),
            "pipe `/dev/shm/x`: broken"
        );
    }
}
