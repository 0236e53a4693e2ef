//! `postRenderers[].kustomize`: the rendered objects run through the native kustomize engine as
//! the resources of an in-memory `kustomization.yaml` carrying the `patches` and `images`, one
//! post-renderer after the other (Flux runs kustomize the same way, as a Helm post-renderer).

use ferry_kustomize::{BuildOptions, LoadRestrictor, MemFs, RelPath};
use ferry_proto::helmrelease::PostRenderer;
use serde_json::{Value, json};

/// A post-renderer refused the manifest.
#[derive(Debug, thiserror::Error)]
#[error("postRenderers[{index}].kustomize: {why}")]
pub struct PostRenderError {
    pub index: usize,
    pub why: String,
}

/// Applies every kustomize post-renderer, in order, to `objects`.
pub fn apply(
    renderers: &[PostRenderer],
    mut objects: Vec<Value>,
) -> Result<Vec<Value>, PostRenderError> {
    for (index, r) in renderers.iter().enumerate() {
        let Some(k) = &r.kustomize else { continue };
        if k.patches.is_empty() && k.images.is_empty() {
            continue;
        }
        let err = |why: String| PostRenderError { index, why };
        let mut fs = MemFs::new();
        fs.insert(
            "helm-manifest.yaml",
            ferry_kustomize::yaml::json::to_yaml_stream(objects.iter()),
        )
        .map_err(|e| err(e.to_string()))?;
        let kustomization = json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["helm-manifest.yaml"],
            "patches": k.patches,
            "images": k.images,
        });
        fs.insert(
            "kustomization.yaml",
            ferry_kustomize::yaml::json::to_yaml(&kustomization),
        )
        .map_err(|e| err(e.to_string()))?;
        let opts = BuildOptions {
            load_restrictor: LoadRestrictor::RootOnly,
        };
        let out =
            ferry_kustomize::build(&fs, &RelPath::root(), &opts).map_err(|e| err(e.to_string()))?;
        objects = out.resources.into_iter().map(|r| r.obj.into()).collect();
    }
    Ok(objects)
}

/// Helm 4 runs post-renderers over the hooks too, as a stream of their own (helm#13154).
/// Patches that stream cannot match are left out of it: a patch without `target` names its
/// object (a strategic-merge patch: kind and name) and kustomize refuses one that matches
/// nothing, so it applies to the hooks only if a hook has that kind and name.
pub fn apply_to_hooks(
    renderers: &[PostRenderer],
    hooks: Vec<Value>,
) -> Result<Vec<Value>, PostRenderError> {
    if hooks.is_empty() {
        return Ok(hooks);
    }
    let names = |v: &Value| {
        (
            v.get("kind").and_then(Value::as_str).map(str::to_string),
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string),
        )
    };
    let present: Vec<_> = hooks.iter().map(names).collect();
    let for_hooks: Vec<PostRenderer> = renderers
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(k) = r.kustomize.as_mut() {
                k.patches.retain(|p| {
                    p.get("target").is_some_and(|t| !t.is_null())
                        || p.get("patch")
                            .and_then(Value::as_str)
                            .and_then(|text| {
                                ferry_kustomize::yaml::json::parse_documents(text).ok()
                            })
                            .is_some_and(|docs| {
                                docs.len() == 1 && present.contains(&names(&docs[0]))
                            })
                });
            }
            r
        })
        .collect();
    apply(&for_hooks, hooks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::helmrelease::KustomizePostRenderer;

    #[test]
    fn patches_and_images_apply_to_the_rendered_objects() {
        let objects = vec![json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.0"}]}}}
        })];
        let renderers = vec![PostRenderer {
            kustomize: Some(KustomizePostRenderer {
                patches: vec![json!({
                    "patch": "- op: add\n  path: /metadata/labels\n  value: {team: a}\n",
                    "target": {"kind": "Deployment"}
                })],
                images: vec![json!({"name": "nginx", "newTag": "1.27"})],
            }),
        }];
        let out = apply(&renderers, objects).expect("renders");
        assert_eq!(out[0]["metadata"]["labels"]["team"], "a");
        assert_eq!(
            out[0]["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.27"
        );
        let bad = vec![PostRenderer {
            kustomize: Some(KustomizePostRenderer {
                patches: vec![json!({"patch": "- op: nonsense\n  path: /x\n"})],
                images: vec![],
            }),
        }];
        let err = apply(&bad, out.clone()).expect_err("bad patch");
        assert!(
            err.to_string().starts_with("postRenderers[0].kustomize"),
            "{err}"
        );
    }

    #[test]
    fn hooks_get_the_patches_that_can_reach_them() {
        let hook = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "annotations": {"helm.sh/hook": "pre-install"}},
            "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "nginx:1.0"}]}}}
        });
        let renderers = vec![PostRenderer {
            kustomize: Some(KustomizePostRenderer {
                patches: vec![
                    // Names a Deployment the hook stream does not have: left out of it.
                    json!({"patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n"}),
                    json!({
                        "patch": "- op: add\n  path: /metadata/labels\n  value: {team: a}\n",
                        "target": {"kind": "Job"}
                    }),
                    json!({"patch": "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec: {backoffLimit: 1}\n"}),
                ],
                images: vec![json!({"name": "nginx", "newTag": "1.27"})],
            }),
        }];
        let out = apply_to_hooks(&renderers, vec![hook]).expect("post-renders the hooks");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["metadata"]["labels"]["team"], "a");
        assert_eq!(out[0]["spec"]["backoffLimit"], 1);
        assert_eq!(
            out[0]["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.27"
        );
        assert_eq!(
            out[0]["metadata"]["annotations"]["helm.sh/hook"],
            "pre-install"
        );
    }
}
