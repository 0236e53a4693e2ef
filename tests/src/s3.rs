//! [`S3Server`]: a real S3-protocol server on 127.0.0.1 for storage tests — moto in server mode
//! (`moto_server`, from PyPI `moto[server]`).
//!
//! Why moto rather than `s3s-fs`: it is a `pip install` away (no extra Rust build on CI's two
//! cores), it implements the conditional writes (`If-None-Match: *`) that create-only artifact
//! writes rely on, and it is the S3 fake most projects already test against. The binary is taken
//! from `FERRY_MOTO_SERVER`, else `moto_server` on `PATH`; when it is missing the harness fails
//! with the install command rather than skipping.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::poll::{Started, listening};

/// A running `moto_server`; killed on drop. It accepts any access key.
pub struct S3Server {
    child: Child,
    port: u16,
}

pub const ACCESS_KEY: &str = "ferry-test";
pub const SECRET_KEY: &str = "ferry-test-secret";
pub const REGION: &str = "us-east-1";

impl S3Server {
    pub fn start() -> Result<Self> {
        let program = std::env::var("FERRY_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut child = match Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "{program} not found: the S3 storage tests need moto's S3 server; \
                     install it with `pip install 'moto[server]'` (or set FERRY_MOTO_SERVER)"
                ),
                Err(e) => return Err(e).with_context(|| format!("starting {program}")),
            };
            match listening(&mut child, port, &program, Duration::from_secs(30)) {
                Ok(Started::Listening) => return Ok(S3Server { child, port }),
                Ok(Started::Exited(status)) if status.code() == Some(127) => {
                    bail!("{program} could not run: install it with `pip install 'moto[server]'`")
                }
                Ok(Started::Exited(_)) | Err(_) => {}
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("{program} did not start listening on 127.0.0.1")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (moto does not check request signatures).
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            conn,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply)?;
        let status = reply.lines().next().unwrap_or_default();
        if !status.contains(" 200") {
            bail!("creating bucket {bucket}: {status}");
        }
        Ok(())
    }

    /// Writes `body` at `key` of `bucket` exactly as given — hostile keys (`../x`, `/abs`)
    /// included, which S3 clients refuse or normalise — and returns the object's ETag without
    /// quotes (what S3 lists).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) -> Result<String> {
        let reply = self.raw("PUT", bucket, key, body)?;
        reply
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("etag")
                    .then(|| value.trim().trim_matches('"').to_string())
            })
            .with_context(|| format!("putting {key:?} into {bucket}: no ETag in the answer"))
    }

    /// Deletes `key` of `bucket` (written as [`S3Server::put_object`] writes it).
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        self.raw("DELETE", bucket, key, b"").map(drop)
    }

    /// One request on a fresh connection; the whole reply, or an error naming the key.
    fn raw(&self, method: &str, bucket: &str, key: &str, body: &[u8]) -> Result<String> {
        // Every byte but unreserved ones and '/' percent-encoded, '.' too: a client-side URL
        // parser cannot collapse `..`, and the server decodes the key as written.
        let mut path = String::new();
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b"-_~/".contains(&b) {
                path.push(char::from(b));
            } else {
                path.push_str(&format!("%{b:02X}"));
            }
        }
        let mut conn = TcpStream::connect(("127.0.0.1", self.port))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        // moto checks no signature, but refuses an anonymous DELETE.
        write!(
            conn,
            "{method} /{bucket}/{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )?;
        conn.write_all(body)?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply)?;
        let status = reply.lines().next().unwrap_or_default();
        if !(status.contains(" 200") || status.contains(" 204")) {
            bail!("{method} {key:?} in {bucket}: {status}");
        }
        Ok(reply)
    }

    /// The environment an `object_store` S3 client reads (`AmazonS3Builder::from_env`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
