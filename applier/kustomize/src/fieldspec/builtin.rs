//! kustomize's default transformer configuration (v5.7.1, `builtin_config/*.yaml`, embedded
//! verbatim) as Rust data. Reading the YAML took most of a small build's time, and every
//! `ferry-kustomize` run is a new process; `generated.rs` holds the same lists as literals.
//! A test holds them equal to the YAML read the general way, and regenerates the file with
//! `FERRY_REGEN_BUILTIN=1 cargo test -p ferry-kustomize builtin_config`.

use super::{FieldSpec, FieldSpecDef, NameBackRef, TransformerConfig};
use crate::resource::Gvk;

#[rustfmt::skip]
mod generated;

/// A field spec as literals: group, version, kind, path, create.
type Spec = (&'static str, &'static str, &'static str, &'static str, bool);

fn specs(list: &[Spec]) -> Vec<FieldSpec> {
    list.iter()
        .map(|&(group, version, kind, path, create)| {
            FieldSpec::from(&FieldSpecDef {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                path: path.into(),
                create,
            })
        })
        .collect()
}

/// The builtin configuration.
pub(super) fn config() -> TransformerConfig {
    use generated as g;
    TransformerConfig {
        name_prefix: specs(g::NAME_PREFIX),
        name_suffix: specs(g::NAME_SUFFIX),
        common_labels: specs(g::COMMON_LABELS),
        template_labels: specs(g::TEMPLATE_LABELS),
        common_annotations: specs(g::COMMON_ANNOTATIONS),
        namespace: specs(g::NAMESPACE),
        var_reference: specs(g::VAR_REFERENCE),
        name_reference: g::NAME_REFERENCE
            .iter()
            .map(|&(group, version, kind, list)| NameBackRef {
                gvk: Gvk {
                    group: group.into(),
                    version: version.into(),
                    kind: kind.into(),
                },
                field_specs: specs(list),
            })
            .collect(),
        images: specs(g::IMAGES),
        replicas: specs(g::REPLICAS),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConfigDef;
    use super::*;

    /// kustomize's default configuration files (v5.7.1), as one YAML document.
    fn yaml_text() -> String {
        let mut all = String::new();
        for part in [
            include_str!("../builtin_config/nameprefix.yaml"),
            include_str!("../builtin_config/namesuffix.yaml"),
            include_str!("../builtin_config/commonlabels.yaml"),
            include_str!("../builtin_config/templatelabels.yaml"),
            include_str!("../builtin_config/commonannotations.yaml"),
            include_str!("../builtin_config/namespace.yaml"),
            include_str!("../builtin_config/varreference.yaml"),
            include_str!("../builtin_config/namereference.yaml"),
            include_str!("../builtin_config/images.yaml"),
            include_str!("../builtin_config/replicas.yaml"),
        ] {
            all.push_str(part);
            all.push('\n');
        }
        all
    }

    fn list(name: &str, defs: &[FieldSpecDef]) -> String {
        let mut out = format!("pub(super) const {name}: &[super::Spec] = &[\n");
        for d in defs {
            out.push_str(&format!(
                "    ({:?}, {:?}, {:?}, {:?}, {}),\n",
                d.group, d.version, d.kind, d.path, d.create
            ));
        }
        out.push_str("];\n");
        out
    }

    fn generate(def: &ConfigDef) -> String {
        let mut out = String::from(
            "// @generated from ../builtin_config/*.yaml by\n\
             // `FERRY_REGEN_BUILTIN=1 cargo test -p ferry-kustomize builtin_config`: do not edit.\n\n",
        );
        out.push_str(&list("NAME_PREFIX", &def.name_prefix));
        out.push_str(&list("NAME_SUFFIX", &def.name_suffix));
        out.push_str(&list("COMMON_LABELS", &def.common_labels));
        out.push_str(&list("TEMPLATE_LABELS", &def.template_labels));
        out.push_str(&list("COMMON_ANNOTATIONS", &def.common_annotations));
        out.push_str(&list("NAMESPACE", &def.namespace));
        out.push_str(&list("VAR_REFERENCE", &def.var_reference));
        out.push_str(&list("IMAGES", &def.images));
        out.push_str(&list("REPLICAS", &def.replicas));
        out.push_str(
            "pub(super) const NAME_REFERENCE: &[(&str, &str, &str, &[super::Spec])] = &[\n",
        );
        for n in &def.name_reference {
            out.push_str(&format!(
                "    ({:?}, {:?}, {:?}, &[\n",
                n.group, n.version, n.kind
            ));
            for d in &n.field_specs {
                out.push_str(&format!(
                    "        ({:?}, {:?}, {:?}, {:?}, {}),\n",
                    d.group, d.version, d.kind, d.path, d.create
                ));
            }
            out.push_str("    ]),\n");
        }
        out.push_str("];\n");
        out
    }

    #[test]
    fn builtin_config_literals_equal_the_embedded_yaml() {
        // The general parser (libyaml), not the fast path the engine reads resources with.
        let doc = crate::yaml::parse_documents_general(&yaml_text())
            .expect("embedded builtin config is valid YAML")
            .pop()
            .expect("embedded builtin config is one document");
        let def: ConfigDef =
            crate::value::from_value(doc).expect("embedded builtin config is a ConfigDef");
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/fieldspec/builtin/generated.rs"
        );
        if std::env::var_os("FERRY_REGEN_BUILTIN").is_some() {
            std::fs::write(path, generate(&def)).expect("write generated.rs");
        }
        let on_disk = std::fs::read_to_string(path).expect("read generated.rs");
        assert_eq!(
            on_disk,
            generate(&def),
            "regenerate with FERRY_REGEN_BUILTIN=1"
        );
        assert_eq!(config(), TransformerConfig::from(&def));
        assert!(!def.name_reference.is_empty() && !def.namespace.is_empty());
    }
}
