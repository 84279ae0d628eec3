//! Who used the CPUs during a run (Linux /proc; elsewhere nothing is reported). On a shared
//! machine the wall time of a run says little without it: the children's CPU time (from this
//! process's `cutime + cstime`, which count waited-for children) against the whole machine's
//! busy time (`/proc/stat`) gives the CPU time other processes took meanwhile.

/// Clock ticks per second of /proc (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Non-idle time of all CPUs (ticks).
    machine_busy: u64,
    /// CPU time of this process's waited-for children (ticks).
    children: u64,
}

/// CPU seconds over an interval.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The child process's own (user + system, its threads included).
    pub child_s: f64,
    /// Everything else on the machine (other users' processes; this harness's own is negligible).
    pub others_s: f64,
}

impl Snapshot {
    pub fn now() -> Option<Snapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user already)
        let busy = cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4).copied().unwrap_or(0);
        let me = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after "(comm)": state is field 3; cutime and cstime are fields 16 and 17.
        let rest: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
        let children = rest.get(13)?.parse::<u64>().ok()? + rest.get(14)?.parse::<u64>().ok()?;
        Some(Snapshot { machine_busy: busy, children })
    }

    pub fn since(self, before: Snapshot) -> Usage {
        let child = self.children.saturating_sub(before.children) as f64 / TICKS;
        let busy = self.machine_busy.saturating_sub(before.machine_busy) as f64 / TICKS;
        Usage { child_s: child, others_s: (busy - child).max(0.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_shows_up_as_the_child() {
        let (Some(a), true) = (Snapshot::now(), cfg!(target_os = "linux")) else { return };
        // A child that burns a little CPU.
        let st = std::process::Command::new("sh").args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]).status().unwrap();
        assert!(st.success());
        let u = Snapshot::now().unwrap().since(a);
        assert!(u.child_s > 0.0, "{u:?}");
        assert!(u.others_s >= 0.0);
    }
}
