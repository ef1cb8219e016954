//! `--low-priority`: the process gives way to the shop on the same server.
//! Its CPU priority goes to nice 19 and the idle scheduling class
//! (SCHED_IDLE: it runs only on a core nothing else wants, and a waking
//! web server preempts it at once, where nice 19 alone still takes a time
//! slice), and its I/O class to idle (Linux), so the web server and the
//! database go first, and the migration takes what they leave.

use std::io;

/// Lowers the CPU and I/O priority of the calling thread, and of every
/// thread it starts from then on (call it before the runtime starts).
#[allow(unsafe_code)]
pub fn lower() -> io::Result<()> {
    // SAFETY: setpriority on our own process (who 0) with a plain value.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a
    // valid parameter block that outlives the call.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13): libc has
    // no wrapper, so the raw system call.
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: the system call takes three integers and touches no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_that_lowers_itself_runs_at_nice_19_in_the_idle_class() {
        let (nice, policy, class) = std::thread::spawn(|| {
            super::lower().unwrap();
            #[allow(unsafe_code)]
            // SAFETY: reading our own priorities.
            unsafe {
                let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
                let policy = libc::sched_getscheduler(0);
                let prio =
                    libc::syscall(libc::SYS_ioprio_get, 1 as libc::c_long, 0 as libc::c_long);
                (nice, policy, prio >> 13)
            }
        })
        .join()
        .unwrap();
        assert_eq!((nice, policy, class), (19, libc::SCHED_IDLE, 3));
    }
}
