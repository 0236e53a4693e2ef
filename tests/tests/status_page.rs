//! The source server's status page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by tests/scripts/test.sh), driven over WebDriver: the page
//! loads, shows the sources and what the agent reported (a failing Kustomization with its
//! message, inventory), and shows a new revision and its apply without a reload. The last screenshot is kept in `target/test-artifacts/status-page.png`.

mod e2e_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e_support::{Env, NS, seed_spec, write_seed};
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(var: &str, default: &str) -> Result<PathBuf> {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()));
    if !path.exists() {
        bail!(
            "{} not found (set {var}; tests/scripts/test.sh installs Debian's chromium and chromium-driver)",
            path.display()
        );
    }
    Ok(path)
}

async fn start_driver() -> Result<Driver> {
    let bin = tool("FERRY_CHROMEDRIVER", "/usr/bin/chromedriver")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if ready.is_some() {
            return Ok(driver);
        }
        if Instant::now() > deadline {
            bail!("chromedriver did not answer on {} within 20 s", driver.url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn browser(driver: &Driver) -> Result<Client> {
    ferry_testcluster::cluster::install_crypto_provider();
    let chromium = tool("FERRY_CHROMIUM", "/usr/bin/chromium")?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,900"],
        }),
    );
    ClientBuilder::rustls()?
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .context("opening a Chromium session")
}

/// The text of the first element matching `css`, or "" when there is none.
async fn text(c: &Client, css: &str) -> Result<String> {
    let v = c
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            vec![json!(css)],
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().to_string())
}

/// Waits until the element's text contains `want`; returns how long that took.
async fn wait_text(c: &Client, css: &str, want: &str, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let got = text(c, css).await?;
        if got.contains(want) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            bail!("{css}: waited {within:?} for {want:?}, the page shows {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn screenshot(c: &Client, name: &str) -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, c.screenshot().await?)?;
    Ok(path)
}

/// A cell of the row of a source (`what` = "source") or an agent's object ("object") in NS.
fn row(what: &str, kind: &str, name: &str, cell: &str) -> String {
    format!("tr[data-{what}=\"{kind}/{NS}/{name}\"] td.{cell}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_sources_and_agents_and_updates_live_in_chromium() -> Result<()> {
    let mut env = Env::on_test_server().await?;
    write_seed(&env.upstream, "app", "v1.0.0")?;
    env.upstream.commit_push("seed")?;
    let first = env.upstream.head()?;
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.apply_kustomization("broken", seed_spec("./no-such-dir"))
        .await?;
    env.wait_ready("app", "True", "ReconciliationSucceeded", LIMIT)
        .await?;

    let driver = start_driver().await?;
    let c = browser(&driver).await?;
    let result = async {
        c.goto(&format!("{}/", env.source_url())).await?;
        assert_eq!(c.title().await?, "Ferry source server");
        wait_text(&c, &row("source", "GitRepository", "app", "revision"), &first, LIMIT).await?;
        wait_text(&c, &row("source", "GitRepository", "app", "ready"), "True", LIMIT).await?;
        // What the agent reported: its Kustomizations, applied revision, and why one fails.
        wait_text(&c, &row("object", "Kustomization", "app", "revision"), &first, LIMIT).await?;
        wait_text(&c, &row("object", "Kustomization", "broken", "ready"), "False", LIMIT).await?;
        // Waited for, not read once: a reconcile of `broken` before the source server had its
        // first artifact failed too (no artifact yet), and that report may still be shown.
        wait_text(&c, &row("object", "Kustomization", "broken", "message"), "no-such-dir", LIMIT)
            .await?;
        let inventory = text(&c, &row("object", "Kustomization", "app", "message")).await?;
        assert!(inventory.contains("Deployment team-a/my-app"), "inventory: {inventory:?}");
        // The script follows the server's change stream.
        wait_text(&c, "#live", "live", LIMIT).await?;

        // A marker that a reload would wipe.
        c.execute("window.ferryNoReload = 42;", vec![]).await?;
        write_seed(&env.upstream, "app", "v2.0.0")?;
        env.upstream.commit_push("second")?;
        let second = env.upstream.head()?;
        let pushed = Instant::now();
        reqwest::Client::new()
            .post(format!("{}/v1/sources/{NS}/app/reconcile", env.source_url()))
            .send()
            .await?
            .error_for_status()?;
        wait_text(&c, &row("source", "GitRepository", "app", "revision"), &second, LIMIT).await?;
        let fetched = pushed.elapsed();
        // The same update carries the status that goes with the artifact (recorded before the
        // artifact is announced).
        let message = text(&c, &row("source", "GitRepository", "app", "message")).await?;
        assert!(message.contains(&second), "message: {message:?}");
        wait_text(&c, &row("object", "Kustomization", "app", "revision"), &second, LIMIT).await?;
        eprintln!(
            "status page: new revision shown {fetched:?} after the push, applied by the agent {:?} after",
            pushed.elapsed()
        );
        let marker = c.execute("return window.ferryNoReload;", vec![]).await?;
        assert_eq!(marker, json!(42), "the page was reloaded instead of updated");
        let shot = screenshot(&c, "status-page.png").await?;
        eprintln!("screenshot: {}", shot.display());
        anyhow::Ok(())
    }
    .await;
    c.close().await?;
    result
}
