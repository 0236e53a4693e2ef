//! [`SmartHttp`]: Git's smart HTTP protocol on 127.0.0.1 — `git http-backend` run as a CGI
//! for each request by a small axum server, with optional basic or bearer auth.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use tokio::io::AsyncWriteExt;

/// What the server demands before running `git http-backend`.
#[derive(Clone, Debug)]
pub enum HttpAuth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

struct Shared {
    root: PathBuf,
    auth: HttpAuth,
    requests: AtomicUsize,
    unauthorized: AtomicUsize,
    pack_fetches: AtomicUsize,
    /// Milliseconds every request waits before it is served (a slow Git host).
    delay_ms: AtomicU64,
}

/// A running smart-HTTP server; stops when dropped.
pub struct SmartHttp {
    port: u16,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SmartHttp {
    /// Serves the repositories under `root` at `http://127.0.0.1:<port>/<name>`.
    pub fn start(root: &Path, auth: HttpAuth) -> Result<Self> {
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            auth,
            requests: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
            pack_fetches: AtomicUsize::new(0),
            delay_ms: AtomicU64::new(0),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("smart-http".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(_) => return,
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let app = axum::Router::new().fallback(cgi).with_state(state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                });
            })
            .context("starting the smart-http thread")?;
        Ok(SmartHttp {
            port,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The URL of repository `name`, optionally with `user:password@` in it.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Requests served so far (any status).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests refused with 401.
    pub fn unauthorized(&self) -> usize {
        self.shared.unauthorized.load(Ordering::SeqCst)
    }

    /// Makes every later request wait `delay` before it is served (a slow Git host).
    pub fn set_delay(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Protocol-v2 `command=fetch` requests (pack transfers), as opposed to ref listings.
    pub fn pack_fetches(&self) -> usize {
        self.shared.pack_fetches.load(Ordering::SeqCst)
    }
}

impl Drop for SmartHttp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn authorized(auth: &HttpAuth, headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match auth {
        HttpAuth::None => true,
        HttpAuth::Basic { username, password } => {
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            given == format!("Basic {expected}")
        }
        HttpAuth::Bearer(token) => given == format!("Bearer {token}"),
    }
}

fn status(code: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = code;
    r
}

async fn cgi(State(shared): State<Arc<Shared>>, req: Request) -> Response<Body> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let (parts, body) = req.into_parts();
    if !authorized(&shared.auth, &parts.headers) {
        shared.unauthorized.fetch_add(1, Ordering::SeqCst);
        let mut r = status(StatusCode::UNAUTHORIZED, "authentication required\n");
        let challenge = match shared.auth {
            HttpAuth::Bearer(_) => "Bearer realm=\"ferry-test\"",
            _ => "Basic realm=\"ferry-test\"",
        };
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        return r;
    }
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    };
    if body.windows(13).any(|w| w == b"command=fetch") {
        shared.pack_fetches.fetch_add(1, Ordering::SeqCst);
    }
    match run_backend(&shared.root, &parts, body).await {
        Ok(r) => r,
        Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}\n")),
    }
}

async fn run_backend(
    root: &Path,
    parts: &axum::http::request::Parts,
    body: Bytes,
) -> Result<Response<Body>> {
    let hv = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", hv(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", hv(header::CONTENT_ENCODING))
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(p) = parts
        .headers
        .get("git-protocol")
        .and_then(|v| v.to_str().ok())
    {
        cmd.env("GIT_PROTOCOL", p);
    }
    let mut child = cmd.spawn().context("spawning git http-backend")?;
    let mut stdin = child.stdin.take().context("http-backend stdin")?;
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let out = child
        .wait_with_output()
        .await
        .context("running git http-backend")?;
    let _ = writer.await;
    parse_cgi(&out.stdout)
}

/// Splits CGI output into headers (with `Status:`) and body.
fn parse_cgi(out: &[u8]) -> Result<Response<Body>> {
    let (head, body) = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&out[..i], &out[i + 4..]),
        None => {
            let i = out
                .windows(2)
                .position(|w| w == b"\n\n")
                .context("CGI output without a header terminator")?;
            (&out[..i], &out[i + 2..])
        }
    };
    let mut response = Response::new(Body::from(body.to_vec()));
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            *response.status_mut() = StatusCode::from_u16(code)?;
        } else if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    Ok(response)
}
