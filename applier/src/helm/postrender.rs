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
            ferry_kustomize::yaml::to_yaml_stream(objects.iter()),
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
            ferry_kustomize::yaml::to_yaml(&kustomization),
        )
        .map_err(|e| err(e.to_string()))?;
        let opts = BuildOptions {
            load_restrictor: LoadRestrictor::RootOnly,
        };
        let out =
            ferry_kustomize::build(&fs, &RelPath::root(), &opts).map_err(|e| err(e.to_string()))?;
        objects = out.resources.into_iter().map(|r| r.obj).collect();
    }
    Ok(objects)
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
        let err = apply(&bad, out).expect_err("bad patch");
        assert!(
            err.to_string().starts_with("postRenderers[0].kustomize"),
            "{err}"
        );
    }
}
