//! Render results remembered per input, so a reconcile where nothing changed (same artifact,
//! same spec fields that shape the output, same variables) skips the build: rendering 1000
//! objects costs far more than the rest of an unchanged reconcile. Only successes are kept;
//! a failure is recomputed, so a fix elsewhere (a ConfigMap, a newly served kind) is seen.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use ferry_proto::KustomizationSpec;

use super::{RenderError, RenderedObject, ScopeResolver, render};
use crate::fetch::ArtifactTree;

/// A small most-recently-used memo of [`render`] results.
pub struct RenderMemo {
    capacity: usize,
    entries: Mutex<VecDeque<(String, Arc<Vec<RenderedObject>>)>>,
}

impl RenderMemo {
    /// Keeps the results of the last `capacity` distinct inputs (one per Kustomization is
    /// enough for steady state).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    /// [`render`], or the remembered result for identical inputs.
    pub fn render(
        &self,
        tree: &ArtifactTree,
        spec: &KustomizationSpec,
        substitute_from: &BTreeMap<String, String>,
        namespace: &str,
        scopes: &dyn ScopeResolver,
    ) -> Result<Arc<Vec<RenderedObject>>, RenderError> {
        let key = key(tree, spec, substitute_from, namespace);
        {
            let mut entries = self.entries.lock().expect("render memo lock poisoned");
            if let Some(i) = entries.iter().position(|(k, _)| *k == key) {
                let hit = entries.remove(i).expect("index from position");
                let objects = hit.1.clone();
                entries.push_front(hit);
                return Ok(objects);
            }
        }
        let objects = Arc::new(render(tree, spec, substitute_from, namespace, scopes)?);
        let mut entries = self.entries.lock().expect("render memo lock poisoned");
        entries.retain(|(k, _)| *k != key);
        entries.push_front((key, objects.clone()));
        entries.truncate(self.capacity);
        Ok(objects)
    }
}

/// Everything [`render`] reads besides the scopes, as one string. Compared in full, not
/// hashed, so two inputs can never share a result.
fn key(
    tree: &ArtifactTree,
    spec: &KustomizationSpec,
    vars: &BTreeMap<String, String>,
    namespace: &str,
) -> String {
    let shaping = serde_json::json!([
        tree.digest().to_string(),
        namespace,
        spec.path,
        spec.target_namespace,
        spec.post_build,
        vars,
    ]);
    shaping.to_string()
}

#[cfg(test)]
mod tests {
    use ferry_proto::{Digest, PostBuild};

    use super::*;
    use crate::render::StaticScopes;

    #[test]
    fn same_inputs_share_one_result_and_any_change_renders_again() {
        let tree = ArtifactTree::from_files(
            Digest::of(b"t"),
            [("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  env: ${ENV:=dev}\n")],
        )
        .expect("tree");
        let mut spec = KustomizationSpec {
            post_build: Some(PostBuild::default()),
            ..Default::default()
        };
        let memo = RenderMemo::new(4);
        let scopes = StaticScopes::new();
        let none = BTreeMap::new();
        let a = memo
            .render(&tree, &spec, &none, "ns", &scopes)
            .expect("render");
        let b = memo
            .render(&tree, &spec, &none, "ns", &scopes)
            .expect("render");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a[0].object["data"]["env"], "dev");

        let prod = BTreeMap::from([("ENV".to_string(), "prod".to_string())]);
        let c = memo
            .render(&tree, &spec, &prod, "ns", &scopes)
            .expect("render");
        assert_eq!(c[0].object["data"]["env"], "prod");
        spec.interval = "10m".into();
        let d = memo
            .render(&tree, &spec, &prod, "ns", &scopes)
            .expect("render");
        assert!(Arc::ptr_eq(&c, &d), "interval does not shape the output");
        spec.target_namespace = Some("other".into());
        assert!(memo.render(&tree, &spec, &prod, "ns", &scopes).is_err());
    }
}
