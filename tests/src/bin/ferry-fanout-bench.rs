//! Event-stream fan-out: N clients on `GET /v1/events` of the real `ferry-source-server`
//! binary — its RSS idle, with N connected and after they leave, and how long a new artifact
//! takes to reach all of them. Each run measures two ways of connecting, each against a fresh
//! server: `raw` (a new connection per stream, as agents connect; served beside hyper) and
//! `hyper` (the stream requested on a connection hyper already serves, i.e. the server as it
//! was before the streams moved out of hyper: the peer in the same run).
//!
//! Used by `source-server/bench/fanout/bench.sh`; results in `RESULTS.md` there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use ferry_tests::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

const NS: &str = "team-a";

#[derive(Debug, Parser)]
struct Args {
    /// Clients per measurement (repeat for several).
    #[arg(long, default_values_t = [1000usize, 10000])]
    clients: Vec<usize>,
    /// Ways of connecting to measure: raw, hyper.
    #[arg(long, default_values_t = ["raw".to_string(), "hyper".to_string()])]
    via: Vec<String>,
    /// Where the binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// A child killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok(kb / 1024.0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn metric(http: &reqwest::Client, base: &str, name: &str) -> Result<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

async fn wait_metric(http: &reqwest::Client, base: &str, name: &str, want: f64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while metric(http, base, name).await? != want {
        if Instant::now() > deadline {
            bail!("{name} never reached {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One client: connects, reads its snapshot (`first` in it), then reports when `second`
/// arrives; hangs up when `leave` changes.
#[derive(Clone)]
struct Fleet {
    addr: String,
    via_hyper: bool,
    /// The revision in the snapshot.
    first: String,
    /// The revision waited for (empty until pushed).
    second: watch::Receiver<String>,
    snapshots: Arc<AtomicUsize>,
    arrived: mpsc::UnboundedSender<Instant>,
    leave: watch::Receiver<()>,
}

async fn client(fleet: Fleet, connecting: OwnedSemaphorePermit) -> Result<()> {
    let Fleet {
        addr,
        via_hyper,
        first,
        second,
        snapshots,
        arrived,
        mut leave,
    } = fleet;
    let mut connecting = Some(connecting);
    let mut io = TcpStream::connect(&addr).await?;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    if via_hyper {
        io.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await?;
        while !seen.ends_with("\r\n\r\nok") {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                bail!("closed");
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen.clear();
    }
    io.write_all(b"GET /v1/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
        .await?;
    let mut got_first = false;
    loop {
        let n = tokio::select! {
            n = io.read(&mut buf) => n?,
            _ = leave.changed() => return Ok(()),
        };
        if n == 0 {
            bail!("server closed the stream");
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if !got_first && seen.contains(&first) {
            got_first = true;
            snapshots.fetch_add(1, Ordering::Relaxed);
            connecting.take();
        }
        let want = second.borrow().clone();
        if !want.is_empty() && seen.contains(&want) {
            let _ = arrived.send(Instant::now());
            seen.clear();
            // Stay connected until told to leave.
            let _ = leave.changed().await;
            return Ok(());
        }
        // Only the tail can hold the start of a revision split across reads.
        if seen.len() > 256 {
            seen.drain(..seen.len() - 128);
        }
    }
}

async fn measure(bin_dir: &Path, via: &str, n: usize) -> Result<()> {
    let work = tempfile::Builder::new()
        .prefix("ferry-fanout-bench-")
        .tempdir()?;
    let up = Upstream::new()?;
    up.write("app/configmap.yaml", "kind: ConfigMap\n")?;
    up.commit_push("seed")?;
    let first = format!("sha1:{}", up.head()?);
    let config = format!(
        "apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata: {{name: app, namespace: {NS}}}\n\
         spec: {{url: '{}', interval: 1h}}\n",
        up.file_url()
    );
    std::fs::write(work.path().join("sources.yaml"), config)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let server = Proc(
        Command::new(bin_dir.join("ferry-source-server"))
            .args(["serve", "--config"])
            .arg(work.path().join("sources.yaml"))
            .arg("--storage")
            .arg(work.path().join("storage"))
            .arg("--cache")
            .arg(work.path().join("cache"))
            .args(["--listen", &addr])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.path().join("server.log"))?)
            .spawn()
            .context("starting ferry-source-server")?,
    );
    let pid = server.0.id();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http.get(format!("{base}/v1/sources/{NS}/app")).send().await;
        if let Ok(r) = ready
            && r.text().await.unwrap_or_default().contains(&first)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("source never got its first artifact");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle = rss_mib(pid)?;

    let (second_tx, second_rx) = watch::channel(String::new());
    let (leave_tx, leave_rx) = watch::channel(());
    let (arrived_tx, mut arrived_rx) = mpsc::unbounded_channel();
    let snapshots = Arc::new(AtomicUsize::new(0));
    // Connect at most 256 at a time, as a fleet of agents restarting would not all at once.
    let gate = Arc::new(Semaphore::new(256));
    let fleet = Fleet {
        addr: addr.clone(),
        via_hyper: via == "hyper",
        first: first.clone(),
        second: second_rx,
        snapshots: snapshots.clone(),
        arrived: arrived_tx,
        leave: leave_rx,
    };
    let connect_start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(client(fleet.clone(), permit)));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while snapshots.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} clients got their snapshot",
                snapshots.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect = connect_start.elapsed();
    wait_metric(&http, &base, "ferry_source_event_stream_clients", n as f64).await?;
    let connected = rss_mib(pid)?;

    up.write(
        "app/configmap.yaml",
        "kind: ConfigMap\nmetadata: {name: b}\n",
    )?;
    up.commit_push("second")?;
    second_tx.send_replace(format!("sha1:{}", up.head()?));
    let t0 = Instant::now();
    http.post(format!("{base}/v1/sources/{NS}/app/reconcile"))
        .send()
        .await?
        .error_for_status()?;
    let mut arrivals = Vec::with_capacity(n);
    while arrivals.len() < n {
        match tokio::time::timeout(Duration::from_secs(120), arrived_rx.recv()).await {
            Ok(Some(t)) => arrivals.push(t),
            _ => bail!(
                "only {} of {n} clients got the new revision",
                arrivals.len()
            ),
        }
    }
    let first_arrival = *arrivals.iter().min().expect("n > 0");
    let mut from_request: Vec<f64> = arrivals
        .iter()
        .map(|t| t.duration_since(t0).as_secs_f64() * 1000.0)
        .collect();
    let mut spread: Vec<f64> = arrivals
        .iter()
        .map(|t| t.duration_since(first_arrival).as_secs_f64() * 1000.0)
        .collect();
    from_request.sort_by(f64::total_cmp);
    spread.sort_by(f64::total_cmp);
    let peak = rss_mib(pid)?;

    leave_tx.send_replace(());
    for t in tasks {
        t.await??;
    }
    wait_metric(&http, &base, "ferry_source_event_stream_clients", 0.0).await?;
    let left = rss_mib(pid)?;
    // jemalloc gives unused pages back after its decay time (10 s by default).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let settled = rss_mib(pid)?;
    println!(
        "{via:<5} n={n:<6} rss idle {idle:6.1} MiB | {n} connected {connected:6.1} MiB \
         ({:5.2} KiB/client) | after delivery {peak:6.1} | all left {left:6.1}, +12s {settled:6.1} MiB \
         | connect {:5.1} s | new revision from reconcile request: p50 {:6.1} ms p99 {:6.1} ms \
         max {:6.1} ms; first to last {:6.1} ms (p99 {:6.1})",
        (connected - idle) * 1024.0 / n as f64,
        connect.as_secs_f64(),
        pct(&from_request, 0.5),
        pct(&from_request, 0.99),
        from_request[n - 1],
        spread[n - 1],
        pct(&spread, 0.99),
    );
    drop(server);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("executable directory")?
            .to_path_buf(),
    };
    for &n in &args.clients {
        for via in &args.via {
            if via != "raw" && via != "hyper" {
                bail!("--via {via}: expected raw or hyper");
            }
            measure(&bin_dir, via, n)
                .await
                .with_context(|| format!("{via}, {n} clients"))?;
        }
    }
    Ok(())
}
