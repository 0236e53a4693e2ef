//! Benchmark driver for `bench/run.sh`: times one phase of the Git mirror + artifact pipeline
//! and prints `phase=<name> ms=<wall> …` lines the script puts side by side with plain git.
//!
//! Usage: `mirror-bench cold|poll|update <url> <cache-dir> [repeat]`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ferry_source_server::artifact::{Limits, build_artifact};
use ferry_source_server::git::{GitSource, Mirror};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, phase, url, cache, rest @ ..] = args.as_slice() else {
        return Err("usage: mirror-bench cold|poll|update <url> <cache-dir> [repeat]".into());
    };
    let repeat: usize = rest.first().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let src = GitSource {
        url: url.clone(),
        reference: None,
        auth: None,
        timeout: Duration::from_secs(600),
    };
    let stop = AtomicBool::new(false);
    match phase.as_str() {
        "cold" | "update" => {
            let start = Instant::now();
            let mirror = Mirror::open_or_init(Path::new(cache), "bench")?;
            let rev = mirror.check(&src, &stop)?;
            let checked = start.elapsed();
            let rev = mirror.fetch(&src, &rev, &stop)?;
            let fetched = start.elapsed();
            let built = build_artifact(&mirror, &rev, None, &Limits::default())?;
            let total = start.elapsed();
            println!(
                "phase={phase} ms={:.1} check_ms={:.1} fetch_ms={:.1} build_ms={:.1} entries={} tar_bytes={} gz_bytes={} digest={}",
                ms(total),
                ms(checked),
                ms(fetched - checked),
                ms(total - fetched),
                built.entries,
                built.tar_size,
                built.gz.len(),
                built.digest
            );
        }
        "poll" => {
            let mirror = Mirror::open_or_init(Path::new(cache), "bench")?;
            let mut times = Vec::with_capacity(repeat);
            let first = mirror.check(&src, &stop)?;
            for _ in 0..repeat {
                let start = Instant::now();
                let rev = mirror.check(&src, &stop)?;
                times.push(start.elapsed());
                if rev != first {
                    return Err(format!("ref moved during the poll benchmark: {rev}").into());
                }
            }
            times.sort();
            println!(
                "phase=poll ms={:.1} min_ms={:.1} max_ms={:.1} n={repeat}",
                ms(times[times.len() / 2]),
                ms(times[0]),
                ms(times[times.len() - 1])
            );
        }
        other => return Err(format!("unknown phase {other:?}").into()),
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
