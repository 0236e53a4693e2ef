//! Scale-out on one bucket: several replicas share the store, and each source is polled by one
//! replica at a time, the holder of its `coordination.k8s.io` Lease.
//!
//! A replica tries to take a source's Lease before each poll: it takes it when nobody holds
//! it, when it holds it already (a renewal), or when the holder stopped renewing for
//! `leaseDurationSeconds` (it died: failover). Writes go through the Lease's
//! `resourceVersion`, so of two replicas racing for an expired Lease one wins and the other
//! gets a conflict. The holder renews every third of the duration, also while it fetches, so
//! a long fetch does not lose the Lease to a live holder. The others follow the store: the
//! state record the holder writes is read again at that same period, and a new artifact there
//! is served and announced on their event streams too, so every replica serves every artifact
//! and the stream. A reconcile request (API, webhook) that reaches a replica not holding the
//! Lease is passed on through it: the replica stamps the Lease's [`REQUEST_ANNOTATION`], and
//! the holder, which reads the Lease at every renewal, reconciles when the stamp changed.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use sha2::{Digest as _, Sha256};

use crate::SourceKey;

/// Annotation on a Lease naming the source it coordinates (its name is a hash).
pub const SOURCE_ANNOTATION: &str = "source.ferry.dev/source";

/// Annotation on a Lease a replica stamps (with the time) to ask the holder for a reconcile.
pub const REQUEST_ANNOTATION: &str = "source.ferry.dev/requested-at";

/// What [`Leases::try_hold`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Another live replica holds the Lease.
    Elsewhere,
    /// This replica holds it.
    Held,
    /// This replica holds it, and another replica asked for a reconcile since the last look.
    Requested,
}

/// How replicas coordinate.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// Namespace the Leases live in.
    pub namespace: String,
    /// This replica's identity (`holderIdentity`), unique among the replicas.
    pub identity: String,
    /// How long a Lease stays held without renewal.
    pub duration: Duration,
}

/// Why a Lease could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("Lease {namespace}/{name} of {source_key}: {source}")]
pub struct LeaseError {
    /// The Lease's namespace.
    namespace: String,
    /// The Lease's name.
    name: String,
    /// The source it coordinates.
    source_key: String,
    /// The API server's answer.
    source: kube::Error,
}

/// The Leases of one replica.
pub struct Leases {
    api: Api<Lease>,
    opts: LeaseOptions,
    /// Per Lease: the request stamp seen last, so each request is acted on once.
    seen: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("opts", &self.opts).finish()
    }
}

impl Leases {
    pub fn new(client: kube::Client, opts: LeaseOptions) -> Self {
        Self {
            api: Api::namespaced(client, &opts.namespace),
            opts,
            seen: Default::default(),
        }
    }

    pub fn identity(&self) -> &str {
        &self.opts.identity
    }

    /// How often the holder renews, and the others look again.
    pub fn period(&self) -> Duration {
        self.opts.duration / 3
    }

    /// The Lease name of `key`: a hash, so any namespace and name fit a DNS label.
    pub fn name(key: &SourceKey) -> String {
        let h = Sha256::digest(format!("{}/{}/{}", key.kind, key.namespace, key.name));
        format!("ferry-source-{}", &hex::encode(h)[..20])
    }

    /// Takes or renews `key`'s Lease.
    pub async fn try_hold(&self, key: &SourceKey) -> Result<Hold, LeaseError> {
        let name = Self::name(key);
        let err = |source| LeaseError {
            namespace: self.opts.namespace.clone(),
            name: name.clone(),
            source_key: format!("{} {key}", key.kind),
            source,
        };
        let now = Timestamp::now();
        let seconds = i32::try_from(self.opts.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&name).await.map_err(err)? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    annotations: Some(
                        [(SOURCE_ANNOTATION.to_string(), format!("{} {key}", key.kind))].into(),
                    ),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.opts.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Hold::Held),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Hold::Elsewhere),
                Err(e) => Err(err(e)),
            };
        };
        let stamp = lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REQUEST_ANNOTATION))
            .cloned();
        let spec = lease.spec.get_or_insert_with(Default::default);
        let mine = spec.holder_identity.as_deref() == Some(self.opts.identity.as_str());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(d)) => {
                renewed.as_second().saturating_add(i64::from(d)) < now.as_second()
            }
            _ => true,
        };
        if !mine && !expired && spec.holder_identity.is_some() {
            return Ok(Hold::Elsewhere);
        }
        if !mine {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            spec.holder_identity = Some(self.opts.identity.clone());
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds);
        // `replace` carries the resourceVersion read above: a racing writer gets 409.
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if !mine {
                    tracing::info!(source = %key, lease = %name, identity = %self.opts.identity, "took the source's lease");
                }
                // A new holder reconciles at once anyway: earlier stamps count as seen.
                let mut seen = self.seen.lock().expect("lease stamps lock poisoned");
                let previous = match &stamp {
                    Some(s) => seen.insert(name.clone(), s.clone()),
                    None => seen.remove(&name),
                };
                Ok(if mine && stamp.is_some() && previous != stamp {
                    Hold::Requested
                } else {
                    Hold::Held
                })
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Hold::Elsewhere),
            Err(e) => Err(err(e)),
        }
    }

    /// Asks the holder of `key`'s Lease for a reconcile (this replica does not hold it). A
    /// missing Lease needs no request: whoever takes it reconciles at once.
    pub async fn request(&self, key: &SourceKey) -> Result<(), LeaseError> {
        let name = Self::name(key);
        let err = |source| LeaseError {
            namespace: self.opts.namespace.clone(),
            name: name.clone(),
            source_key: format!("{} {key}", key.kind),
            source,
        };
        // Two tries: a renewal between the read and the write is a conflict, not a refusal.
        for _ in 0..2 {
            let Some(mut lease) = self.api.get_opt(&name).await.map_err(err)? else {
                return Ok(());
            };
            let stamp = Timestamp::now().to_string();
            lease
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(REQUEST_ANNOTATION.to_string(), stamp);
            match self
                .api
                .replace(&name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_dns_labels_per_source() {
        let a = Leases::name(&SourceKey::new("team-a", "app"));
        let b = Leases::name(&SourceKey::of(
            ferry_proto::SourceKind::Bucket,
            "team-a",
            "app",
        ));
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.starts_with("ferry-source-"), "{a}");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
    }
}
