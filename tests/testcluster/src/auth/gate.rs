//! The request gate for `--tls` mode: an axum middleware that authenticates every request,
//! authorizes it with RBAC from the store, and answers the identity requests itself:
//! TokenRequests (`kubectl create token`), TokenReviews (a server checking a client's token),
//! SelfSubjectReviews (`kubectl auth whoami`) and SelfSubjectAccessReviews (`kubectl auth can-i`).
//!
//! Wiring (in the server): `auth::gate::secure(router, gate)` and serve it with
//! [`super::listener::TlsListener`].

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use http::{StatusCode, header};
use serde_json::Value;

use super::AuthError;
use super::authn::{Authenticator, UserInfo};
use super::rbac::{Policy, RequestAttributes, authorize, forbidden, unauthorized};
use crate::status::ApiError;
use crate::store::{State as StoreState, Store};

/// Largest TokenRequest / review body read.
const MAX_TOKEN_REQUEST: usize = 64 * 1024;

/// What the gate needs: who is who, and where the RBAC objects and ServiceAccounts live.
#[derive(Debug)]
pub struct Gate {
    pub authn: Authenticator,
    pub store: Store,
}

impl Gate {
    pub fn new(store: Store, authn: Authenticator) -> Arc<Self> {
        Arc::new(Gate { authn, store })
    }

    /// The user behind a request and whether RBAC lets them do it.
    pub fn check(
        &self,
        authorization: Option<&str>,
        attrs: &RequestAttributes,
    ) -> Result<UserInfo, ApiError> {
        let user = {
            let st = self.store.lock();
            let sa_uid = |ns: &str, name: &str| {
                st.get("serviceaccounts", ns, name)
                    .and_then(|sa| sa.pointer("/metadata/uid"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            self.authn
                .authenticate(authorization, chrono::Utc::now(), &sa_uid)
                .map_err(|_| unauthorized())?
        };
        if self.allowed(&user, attrs) {
            Ok(user)
        } else {
            Err(forbidden(&user, attrs))
        }
    }

    /// Whether RBAC, as currently stored, lets `user` do `attrs`.
    pub fn allowed(&self, user: &UserInfo, attrs: &RequestAttributes) -> bool {
        if user.in_group("system:masters") {
            return true;
        }
        let st = self.store.lock();
        let owned = |key: &str| -> Vec<Value> { st.list(key, None).into_iter().cloned().collect() };
        let (roles, role_bindings, cluster_roles, cluster_role_bindings) = (
            owned("roles.rbac.authorization.k8s.io"),
            owned("rolebindings.rbac.authorization.k8s.io"),
            owned("clusterroles.rbac.authorization.k8s.io"),
            owned("clusterrolebindings.rbac.authorization.k8s.io"),
        );
        drop(st);
        let policy = Policy {
            roles: &roles,
            role_bindings: &role_bindings,
            cluster_roles: &cluster_roles,
            cluster_role_bindings: &cluster_role_bindings,
        };
        authorize(user, attrs, &policy)
    }

    /// `kubectl auth can-i`: evaluates the review's attributes for the caller.
    fn self_subject_access_review(&self, user: &UserInfo, body: &[u8]) -> Result<Value, ApiError> {
        let mut review = decode_body(body, "SelfSubjectAccessReview")?;
        let text = |p: &str| {
            review
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let attrs = if review.pointer("/spec/resourceAttributes").is_some() {
            let resource = "/spec/resourceAttributes";
            RequestAttributes {
                verb: text(&format!("{resource}/verb")),
                resource_request: true,
                path: String::new(),
                api_group: text(&format!("{resource}/group")),
                api_version: text(&format!("{resource}/version")),
                resource: text(&format!("{resource}/resource")),
                subresource: text(&format!("{resource}/subresource")),
                name: text(&format!("{resource}/name")),
                namespace: text(&format!("{resource}/namespace")),
            }
        } else {
            RequestAttributes {
                verb: text("/spec/nonResourceAttributes/verb"),
                path: text("/spec/nonResourceAttributes/path"),
                ..Default::default()
            }
        };
        let allowed = self.allowed(user, &attrs);
        review["kind"] = serde_json::json!("SelfSubjectAccessReview");
        review["apiVersion"] = serde_json::json!("authorization.k8s.io/v1");
        review["metadata"] = serde_json::json!({"creationTimestamp": null});
        review["status"] = serde_json::json!({"allowed": allowed});
        Ok(review)
    }

    fn token_review(&self, review: &Value) -> Value {
        let st = self.store.lock();
        let sa_uid = |ns: &str, name: &str| {
            st.get("serviceaccounts", ns, name)
                .and_then(|sa| sa.pointer("/metadata/uid"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        self.authn.token_review(review, chrono::Utc::now(), &sa_uid)
    }

    fn token_request(&self, attrs: &RequestAttributes, body: &[u8]) -> Result<Value, ApiError> {
        let sa = {
            let st: std::sync::MutexGuard<'_, StoreState> = self.store.lock();
            st.get("serviceaccounts", &attrs.namespace, &attrs.name)
                .cloned()
                .ok_or_else(|| ApiError::not_found("serviceaccounts", &attrs.name))?
        };
        let request = decode_body(body, "TokenRequest")?;
        self.authn
            .token_request(&sa, &request, chrono::Utc::now())
            .map_err(|e| match e {
                AuthError::BadTokenRequest(m) => ApiError::new(422, "Invalid", m),
                other => ApiError::bad_request(other.to_string()),
            })
    }
}

/// Puts the gate in front of a router.
pub fn secure(router: Router, gate: Arc<Gate>) -> Router {
    router.layer(from_fn_with_state(gate, guard))
}

fn respond(code: u16, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(e: &ApiError) -> Response {
    respond(e.code, &e.to_status())
}

async fn guard(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let attrs =
        RequestAttributes::from_request(req.method().as_str(), req.uri().path(), req.uri().query());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match gate.check(authorization, &attrs) {
        Ok(user) => user,
        Err(e) => return error(&e),
    };
    if attrs.resource_request
        && attrs.verb == "create"
        && attrs.api_group == "authentication.k8s.io"
        && attrs.resource == "selfsubjectreviews"
    {
        return respond(201, &self_subject_review(&user, &attrs.api_version));
    }
    if attrs.resource_request
        && attrs.verb == "create"
        && attrs.api_group == "authentication.k8s.io"
        && attrs.resource == "tokenreviews"
    {
        let body = match axum::body::to_bytes(req.into_body(), MAX_TOKEN_REQUEST).await {
            Ok(b) => b,
            Err(e) => return error(&ApiError::bad_request(format!("reading the review: {e}"))),
        };
        return match decode_body(&body, "TokenReview") {
            Ok(review) => respond(201, &gate.token_review(&review)),
            Err(e) => error(&e),
        };
    }
    if attrs.resource_request
        && attrs.verb == "create"
        && attrs.api_group == "authorization.k8s.io"
        && attrs.resource == "selfsubjectaccessreviews"
    {
        let body = match axum::body::to_bytes(req.into_body(), MAX_TOKEN_REQUEST).await {
            Ok(b) => b,
            Err(e) => return error(&ApiError::bad_request(format!("reading the review: {e}"))),
        };
        return match gate.self_subject_access_review(&user, &body) {
            Ok(v) => respond(201, &v),
            Err(e) => error(&e),
        };
    }
    let is_token_request = attrs.resource_request
        && attrs.verb == "create"
        && attrs.api_group.is_empty()
        && attrs.resource == "serviceaccounts"
        && attrs.subresource == "token";
    if !is_token_request {
        return next.run(req).await;
    }
    let body = match axum::body::to_bytes(req.into_body(), MAX_TOKEN_REQUEST).await {
        Ok(b) => b,
        Err(e) => return error(&ApiError::bad_request(format!("reading TokenRequest: {e}"))),
    };
    match gate.token_request(&attrs, &body) {
        Ok(v) => respond(201, &v),
        Err(e) => error(&e),
    }
}

/// `kubectl auth whoami`: the request's own identity.
fn self_subject_review(user: &UserInfo, version: &str) -> Value {
    let mut info = serde_json::json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = serde_json::json!(user.uid);
    }
    serde_json::json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("authentication.k8s.io/{version}"),
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": info},
    })
}

/// A request body as kubectl sends it: protobuf for built-in types, else JSON; empty → `{}`.
fn decode_body(body: &[u8], what: &str) -> Result<Value, ApiError> {
    if body.starts_with(b"k8s\0") {
        crate::protobuf::decode(body)
    } else if body.iter().all(u8::is_ascii_whitespace) {
        Ok(serde_json::json!({}))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("decoding {what}: {e}")))
    }
}
