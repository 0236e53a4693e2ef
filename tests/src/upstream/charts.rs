//! [`ChartServer`]: a Helm chart repository on 127.0.0.1 — a static file server over one
//! directory (filled with real `helm package` and `helm repo index` output) that answers
//! conditional GETs like a web server does (`ETag` = sha256 of the file, `Last-Modified`,
//! 304 on `If-None-Match`), optionally demands basic auth, and records every request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode, header};

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// 200, 304, 401 or 404.
    pub status: u16,
}

struct Shared {
    root: PathBuf,
    /// `user:password` demanded, if any.
    basic: Option<(String, String)>,
    seen: Mutex<Vec<Seen>>,
}

/// A running chart server; stops when dropped.
pub struct ChartServer {
    port: u16,
    scheme: &'static str,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChartServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChartServer {
    /// Serves the files under `root` at `http://127.0.0.1:<port>/<path>`; with `basic`, every
    /// request must carry those credentials (else 401).
    pub async fn start(root: &Path, basic: Option<(&str, &str)>) -> Result<Self> {
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            basic: basic.map(|(u, p)| (u.to_string(), p.to_string())),
            seen: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            port,
            scheme: "http",
            shared,
            task,
        })
    }

    /// [`ChartServer::start`] over HTTPS with `tls` (e.g. a testcluster `TlsMaterial`'s
    /// `server_config()`), at `https://localhost:<port>`.
    pub async fn start_tls(root: &Path, tls: Arc<rustls::ServerConfig>) -> Result<Self> {
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            basic: None,
            seen: Mutex::new(Vec::new()),
        });
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = tcp.local_addr()?.port();
        let listener = ferry_testcluster::auth::TlsListener::new(tcp, tls)?;
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            port,
            scheme: "https",
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:<port>` (`https://localhost:<port>` with TLS).
    pub fn url(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}", self.port),
            _ => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Requests of `path` answered with `status`.
    pub fn count(&self, path: &str, status: u16) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.path == path && s.status == status)
            .count()
    }
}

fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", ferry_proto::Digest::of(data).hex())
}

async fn serve(State(s): State<Arc<Shared>>, req: Request) -> Response<Body> {
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = |status: StatusCode, body: Body, etag: Option<String>| {
        s.seen.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
            path: path.clone(),
            authorization: authorization.clone(),
            status: status.as_u16(),
        });
        let mut b = Response::builder().status(status);
        if let Some(e) = etag {
            b = b
                .header(header::ETAG, e)
                .header(header::LAST_MODIFIED, "Wed, 01 Jan 2025 00:00:00 GMT");
        }
        b.body(body).expect("valid response")
    };
    if let Some((u, p)) = &s.basic {
        use base64::Engine as _;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        );
        if authorization.as_deref() != Some(want.as_str()) {
            return answer(StatusCode::UNAUTHORIZED, Body::empty(), None);
        }
    }
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return answer(StatusCode::NOT_FOUND, Body::empty(), None);
    }
    let Ok(data) = tokio::fs::read(s.root.join(rel)).await else {
        return answer(StatusCode::NOT_FOUND, Body::empty(), None);
    };
    let etag = etag_of(&data);
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return answer(StatusCode::NOT_MODIFIED, Body::empty(), Some(etag));
    }
    answer(StatusCode::OK, Body::from(data), Some(etag))
}

/// Runs the real `helm` with its own HOME under `home`.
pub fn helm(home: &Path, args: &[&str]) -> Result<String> {
    let bin = crate::tools::helm()?;
    let out = std::process::Command::new(&bin)
        .args(args)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "helm {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `helm create <name>` in `work`, with `version` set in its Chart.yaml, then `helm package`
/// into `repo`; returns the package's path.
pub fn create_and_package(work: &Path, repo: &Path, name: &str, version: &str) -> Result<PathBuf> {
    let dir = work.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dir)?;
    let home = work.join(".helm-home");
    std::fs::create_dir_all(&home)?;
    let chart = dir.join(name);
    if !chart.exists() {
        helm(&home, &["create", &chart.display().to_string()])?;
    }
    let chart_yaml = chart.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml)?;
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                format!("version: {version}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&chart_yaml, text + "\n")?;
    std::fs::create_dir_all(repo)?;
    helm(
        &home,
        &[
            "package",
            &chart.display().to_string(),
            "-d",
            &repo.display().to_string(),
        ],
    )?;
    Ok(repo.join(format!("{name}-{version}.tgz")))
}

/// `helm repo index <repo> [--url <url>]`.
pub fn index(work: &Path, repo: &Path, url: Option<&str>) -> Result<()> {
    let home = work.join(".helm-home");
    std::fs::create_dir_all(&home)?;
    let dir = repo.display().to_string();
    let mut args = vec!["repo", "index", dir.as_str()];
    if let Some(u) = url {
        args.extend(["--url", u]);
    }
    helm(&home, &args)?;
    Ok(())
}
