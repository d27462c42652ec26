//! Runs one function over a job's files on a pool of worker threads, timing each file and
//! telling the observer as each one is done.

use std::time::Instant;

use rayon::prelude::*;

use super::observer::Observer;
use crate::error::Result;
use crate::report::FileReport;

/// Files processed at once: `jobs`, else one per core, never more than there are files.
pub(crate) fn workers(jobs: Option<usize>, files: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    jobs.unwrap_or(cores).clamp(1, files.max(1))
}

/// Keeps freed memory in the process for the next photo (the jobs call it before their
/// workers start; benchmarks call it to match). Each photo needs a few buffers of tens of MB
/// (libjpeg's coefficients, decoded pixels); glibc hands blocks that large back to the kernel
/// when they are freed, and the next photo pays a page fault for every 4 KiB of them again:
/// reading a 12 MP JPEG's coefficients took 23 ms that way, 12 ms with the memory kept. Peak
/// memory is unchanged: it is the same buffers, reused.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator thresholds; it is called before the workers start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Runs `f` over `items` on `workers` threads; reports come back in the items' order.
pub(crate) fn run<T: Send>(
    items: Vec<T>,
    workers: usize,
    observer: &dyn Observer,
    f: impl Fn(T) -> FileReport + Sync + Send,
) -> Result<Vec<FileReport>> {
    keep_freed_memory();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(workers).build()?;
    observer.started(items.len());
    let reports = pool.install(|| {
        items
            .into_par_iter()
            .map(|item| {
                let started = Instant::now();
                let mut report = f(item);
                report.seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
                observer.file_done(&report);
                report
            })
            .collect()
    });
    observer.finished();
    Ok(reports)
}
