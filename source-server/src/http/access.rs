//! Authentication of API requests and what each may see ([`crate::tenancy`]).
//!
//! Without tenancy (file mode) every request sees everything. With it, [`authenticate`] runs
//! before every API route: the bearer token (or, for the status page in a browser, the
//! `ferry_token` cookie) becomes an [`Identity`], and handlers ask [`Access::sees`] before
//! answering. A refusal is `403` with an empty body, whether or not the thing exists.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::SourceKey;
use crate::tenancy::review::{Denied, Reviewer};
use crate::tenancy::{Identity, Policy};

/// The cookie the status page stores a viewer's token in.
pub const TOKEN_COOKIE: &str = "ferry_token";

/// Tenancy as the HTTP layer needs it.
pub struct Tenancy {
    pub reviewer: Reviewer,
    pub policy: Arc<Policy>,
}

/// What the request may see (a request extension set by [`authenticate`]).
#[derive(Clone)]
pub struct Access {
    who: Option<(Identity, Arc<Policy>)>,
}

impl Access {
    /// No tenancy: everything.
    pub fn everything() -> Self {
        Self { who: None }
    }

    /// May this request see `source`?
    pub fn sees(&self, source: &SourceKey) -> bool {
        match &self.who {
            None => true,
            Some((who, policy)) => policy.visible(who, source),
        }
    }

    /// May this request see (or report for) the agent of namespace `ns`? Only that
    /// namespace's own tenant, or whoever sees everything.
    pub fn sees_namespace(&self, ns: &str) -> bool {
        self.sees_all() || self.tenant() == Some(ns)
    }

    /// Sees every source (file mode, or an operator): no per-item checks needed.
    pub fn sees_all(&self) -> bool {
        matches!(&self.who, None | Some((Identity::Operator(_), _)))
    }

    /// The tenant's namespace, when the request is a tenant's.
    pub fn tenant(&self) -> Option<&str> {
        match &self.who {
            Some((Identity::Tenant(ns), _)) => Some(ns),
            _ => None,
        }
    }
}

/// `403` with nothing in the body.
pub fn forbidden() -> Response {
    StatusCode::FORBIDDEN.into_response()
}

pub async fn authenticate(
    State(tenancy): State<Option<Arc<Tenancy>>>,
    mut req: Request,
    next: Next,
) -> Response {
    match identify(
        tenancy.as_deref(),
        req.headers(),
        req.method(),
        req.uri().path(),
    )
    .await
    {
        Ok(access) => {
            req.extensions_mut().insert(access);
            next.run(req).await
        }
        Err(refused) => refused,
    }
}

/// What a request with `headers` may see, or the response refusing it. Shared by the router's
/// middleware and the event streams served outside it ([`super::stream`]).
pub async fn identify(
    tenancy: Option<&Tenancy>,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> Result<Access, Response> {
    let Some(t) = tenancy else {
        return Ok(Access::everything());
    };
    // The cookie only for reads: a cross-site form cannot make a browser POST with it.
    let token = token(headers, method == Method::GET).unwrap_or_default();
    match t.reviewer.identify(&token).await {
        Ok(who) => Ok(Access {
            who: Some((who, t.policy.clone())),
        }),
        Err(Denied::Missing | Denied::Unauthenticated) if path == "/" => Err(super::page::login()),
        Err(e @ (Denied::Missing | Denied::Unauthenticated)) => Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response()),
        Err(Denied::NoTenant { .. }) => Err(forbidden()),
        Err(e @ Denied::Unavailable(_)) => {
            tracing::warn!(error = %e, "request refused: token review unavailable");
            Err(super::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot review the token now",
            ))
        }
    }
}

/// `Authorization: Bearer <token>`, else the `ferry_token` cookie.
fn token(headers: &HeaderMap, cookie: bool) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(|t| t.trim().to_string());
    }
    if !cookie {
        return None;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_header_or_the_page_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(token(&h, true), None);
        h.insert(
            header::COOKIE,
            "a=b; ferry_token=t1".parse().expect("header"),
        );
        assert_eq!(token(&h, true).as_deref(), Some("t1"));
        assert_eq!(token(&h, false), None, "the cookie is for reads only");
        h.insert(header::AUTHORIZATION, "Bearer t2".parse().expect("header"));
        assert_eq!(token(&h, false).as_deref(), Some("t2"));
        h.insert(header::AUTHORIZATION, "Basic x".parse().expect("header"));
        assert_eq!(token(&h, true), None, "another scheme is no token");
    }
}
