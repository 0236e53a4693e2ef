//! kustomize's merge of lists keyed by several fields (container ports and service ports:
//! `containerPort`/`port` + `protocol`). kyaml identifies such items by all keys, a missing key
//! counting as empty, and its handling of items that agree on some keys but not all is
//! peculiar; this reproduces it as observed from kustomize v5.7.1 (see the tests):
//!
//! - a patch item whose keys equal an original item's merges into it;
//! - a patch item that is *compatible* with an original item (equal wherever both have a
//!   value, e.g. `{containerPort: 80, protocol: TCP}` against `{containerPort: 80}`) but not
//!   equal is dropped, and that original item is then left exactly as it was;
//! - the result lists the patch's items first (new ones, and merged ones matched by a key
//!   tuple with an empty part), in patch order, then the original items not yet listed, in
//!   their order — an item merged through a complete key tuple keeps its original position.

use serde_json::{Map, Value};

use super::error::StrategicMergeError;
use super::schema::TypeDef;

/// A patch item with its key tuple (`None`: the item is not an object).
type KeyedItem<'a> = Option<(Vec<String>, &'a Map<String, Value>)>;

/// The key tuple of an item: each key's value as text, `""` when missing.
fn tuple(item: &Map<String, Value>, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|k| match item.get(*k) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        })
        .collect()
}

/// Equal wherever both sides have a value.
fn compatible(a: &[String], b: &[String]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| x.is_empty() || y.is_empty() || x == y)
}

/// Merges `patch` into `original` as kustomize does for a list keyed by `keys`. `merge_item`
/// merges one patch item into one original item (`None`: deleted).
pub(crate) fn merge(
    original: Vec<Value>,
    patch: &[Value],
    keys: &[&str],
    item_ty: Option<&'static TypeDef>,
    path: &str,
    mut merge_item: impl FnMut(
        Option<Map<String, Value>>,
        &Map<String, Value>,
        Option<&'static TypeDef>,
        &str,
    ) -> Result<Option<Map<String, Value>>, StrategicMergeError>,
) -> Result<Vec<Value>, StrategicMergeError> {
    let originals: Vec<(Vec<String>, Value)> = original
        .into_iter()
        .map(|v| {
            let t = v.as_object().map(|m| tuple(m, keys)).unwrap_or_default();
            (t, v)
        })
        .collect();
    let patch_tuples: Vec<KeyedItem<'_>> = patch
        .iter()
        .map(|v| v.as_object().map(|m| (tuple(m, keys), m)))
        .collect();
    // Original items some patch item conflicts with stay untouched.
    let frozen: Vec<bool> = originals
        .iter()
        .map(|(ot, ov)| {
            ov.is_object()
                && patch_tuples
                    .iter()
                    .flatten()
                    .any(|(pt, _)| pt != ot && compatible(pt, ot))
        })
        .collect();
    let mut emitted = vec![false; originals.len()];
    let mut merged_in_place: Vec<Option<Value>> = vec![None; originals.len()];
    let mut out = Vec::with_capacity(originals.len() + patch.len());
    for (i, entry) in patch_tuples.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let Some((pt, pm)) = entry else {
            return Err(StrategicMergeError::Invalid {
                path: item_path,
                message: format!("expected an object keyed by {keys:?}"),
            });
        };
        let conflicts = originals
            .iter()
            .any(|(ot, ov)| ov.is_object() && ot != pt && compatible(pt, ot));
        if conflicts {
            continue;
        }
        match originals.iter().position(|(ot, _)| ot == pt) {
            Some(j) if frozen[j] || emitted[j] => {}
            Some(j) => {
                emitted[j] = true;
                let existing = originals[j].1.as_object().cloned();
                let merged = merge_item(existing, pm, item_ty, &item_path)?;
                if pt.iter().all(|v| !v.is_empty()) {
                    // Deleted (None) or kept where the original was.
                    emitted[j] = merged.is_none();
                    merged_in_place[j] = merged.map(Value::Object);
                } else if let Some(m) = merged {
                    out.push(Value::Object(m));
                }
            }
            None => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    continue;
                }
                if let Some(m) = merge_item(None, pm, item_ty, &item_path)? {
                    out.push(Value::Object(m));
                }
            }
        }
    }
    for (j, (_, v)) in originals.into_iter().enumerate() {
        if !emitted[j] {
            out.push(merged_in_place[j].take().unwrap_or(v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::merge::strategic::{Options, apply_to_object};

    /// Merges container ports as kustomize would and returns the resulting list.
    fn ports(original: Value, patch: Value) -> Value {
        let pod = |ports: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "app", "ports": ports}]}})
        };
        let patch = json!({"spec": {"containers": [{"name": "app", "ports": patch}]}});
        let out = apply_to_object(&pod(original), &patch, Options::KUSTOMIZE)
            .expect("applies")
            .expect("kept");
        out["spec"]["containers"][0]["ports"].clone()
    }

    // Each case below was observed from `kubectl kustomize` (kustomize v5.7.1).
    #[test]
    fn equal_keys_merge_and_new_items_come_first() {
        assert_eq!(
            ports(
                json!([{"containerPort": 8080, "name": "http"}]),
                json!([{"containerPort": 8080, "name": "web"}])
            ),
            json!([{"containerPort": 8080, "name": "web"}])
        );
        assert_eq!(
            ports(
                json!([{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "m"}]),
                json!([{"containerPort": 9090, "name": "x"}, {"containerPort": 7000}])
            ),
            json!([{"containerPort": 9090, "name": "x"}, {"containerPort": 7000}, {"containerPort": 8080, "name": "http"}])
        );
        assert_eq!(
            ports(
                json!([{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53, "protocol": "TCP"}]),
                json!([{"containerPort": 53, "protocol": "UDP", "name": "dns"}])
            ),
            json!([{"containerPort": 53, "protocol": "UDP", "name": "dns"}, {"containerPort": 53, "protocol": "TCP"}])
        );
    }

    #[test]
    fn a_protocol_mismatch_drops_the_patch_item_and_freezes_the_original() {
        let http = json!([{"containerPort": 8080, "name": "http"}]);
        assert_eq!(
            ports(
                http.clone(),
                json!([{"containerPort": 8080, "protocol": "TCP"}])
            ),
            http
        );
        assert_eq!(
            ports(
                http.clone(),
                json!([{"containerPort": 8080, "protocol": "UDP"}])
            ),
            http
        );
        assert_eq!(
            ports(
                http.clone(),
                json!([{"containerPort": 8080, "protocol": "TCP", "name": "x"}, {"containerPort": 8080, "name": "y"}])
            ),
            http
        );
        assert_eq!(
            ports(
                json!([{"containerPort": 8080, "name": "http", "protocol": "TCP"}]),
                json!([{"containerPort": 8080, "name": "web"}])
            ),
            json!([{"containerPort": 8080, "name": "http", "protocol": "TCP"}])
        );
        assert_eq!(
            ports(
                http.clone(),
                json!([{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9000}])
            ),
            json!([{"containerPort": 9000}, {"containerPort": 8080, "name": "http"}])
        );
    }

    #[test]
    fn items_merged_through_complete_keys_keep_their_place() {
        assert_eq!(
            ports(
                json!([
                    {"containerPort": 53, "protocol": "UDP", "name": "dns"},
                    {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
                    {"containerPort": 9153, "name": "metrics"}
                ]),
                json!([
                    {"containerPort": 53, "protocol": "UDP", "hostPort": 53},
                    {"containerPort": 8080, "name": "health"}
                ])
            ),
            json!([
                {"containerPort": 8080, "name": "health"},
                {"containerPort": 53, "protocol": "UDP", "name": "dns", "hostPort": 53},
                {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
                {"containerPort": 9153, "name": "metrics"}
            ])
        );
    }

    #[test]
    fn deletes_need_equal_keys() {
        assert_eq!(
            ports(
                json!([{"containerPort": 8080, "protocol": "UDP"}]),
                json!([{"containerPort": 8080, "protocol": "UDP", "$patch": "delete"}])
            ),
            json!([])
        );
        let both = json!([{"containerPort": 80, "protocol": "UDP"}, {"containerPort": 80, "protocol": "TCP"}]);
        assert_eq!(
            ports(
                both.clone(),
                json!([{"containerPort": 80, "$patch": "delete"}])
            ),
            both
        );
    }
}
