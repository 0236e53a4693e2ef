//! Response shapes a client can ask for with `Accept` (content negotiation by `as=`): the
//! object itself, a `meta.k8s.io/v1 Table` (kubectl get), or only the metadata as
//! `PartialObjectMetadata` / `PartialObjectMetadataList` (kube-rs `list_metadata`, client-go's
//! metadata informers) — what a controller asks for when it only needs names, labels and
//! resourceVersions of many objects.

use serde_json::{Map, Value, json};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shape {
    #[default]
    Full,
    Table,
    Metadata,
}

impl Shape {
    /// The first `as=` in `Accept` this server can produce; the full object otherwise (a real
    /// server does the same when the list also offers plain `application/json`).
    pub fn from_accept(accept: Option<&str>) -> Self {
        for part in accept.unwrap_or_default().split(',') {
            let wants = |what: &str| part.split(';').any(|p| p.trim() == format!("as={what}"));
            if wants("Table") {
                return Shape::Table;
            }
            if wants("PartialObjectMetadata") || wants("PartialObjectMetadataList") {
                return Shape::Metadata;
            }
        }
        Shape::Full
    }

    /// A list (`items`) or a single object in this shape.
    pub fn render(self, v: Value) -> Value {
        match self {
            Shape::Full => v,
            Shape::Table => super::table::from_response(&v),
            Shape::Metadata => metadata_only(v),
        }
    }
}

fn partial(obj: Value) -> Value {
    let meta = match obj {
        Value::Object(mut m) => m.remove("metadata").unwrap_or_else(|| json!({})),
        _ => json!({}),
    };
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
}

fn metadata_only(v: Value) -> Value {
    let Value::Object(mut m) = v else {
        return v;
    };
    match m.remove("items") {
        Some(Value::Array(items)) => {
            let mut out = Map::new();
            out.insert("kind".into(), json!("PartialObjectMetadataList"));
            out.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
            out.insert(
                "metadata".into(),
                m.remove("metadata").unwrap_or_else(|| json!({})),
            );
            // Like kube-apiserver: an empty metadata-only list has `"items": null` (a nil Go
            // slice); full lists say `[]`.
            let items = if items.is_empty() {
                Value::Null
            } else {
                Value::Array(items.into_iter().map(partial).collect())
            };
            out.insert("items".into(), items);
            Value::Object(out)
        }
        _ => partial(Value::Object(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_shape() {
        assert_eq!(
            Shape::from_accept(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
            )),
            Shape::Table
        );
        assert_eq!(
            Shape::from_accept(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Shape::Metadata
        );
        assert_eq!(Shape::from_accept(Some("application/json")), Shape::Full);
        assert_eq!(Shape::from_accept(None), Shape::Full);
    }

    #[test]
    fn metadata_lists_keep_only_metadata() {
        let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9"},
            "items": [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "resourceVersion": "4", "labels": {"x": "y"}},
                "data": {"big": "value"}}]});
        let out = Shape::Metadata.render(list);
        assert_eq!(out["kind"], "PartialObjectMetadataList");
        assert_eq!(out["metadata"]["resourceVersion"], "9");
        assert_eq!(out["items"][0]["kind"], "PartialObjectMetadata");
        assert_eq!(out["items"][0]["metadata"]["resourceVersion"], "4");
        assert_eq!(out["items"][0]["metadata"]["labels"]["x"], "y");
        assert!(out["items"][0].get("data").is_none());
        let one = Shape::Metadata.render(json!({"kind": "ConfigMap",
            "metadata": {"name": "a"}, "data": {"k": "v"}}));
        assert_eq!(one["kind"], "PartialObjectMetadata");
        assert!(one.get("data").is_none());
    }

    #[test]
    fn an_empty_metadata_list_has_null_items_like_kube_apiserver() {
        let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9"}, "items": []});
        let out = Shape::Metadata.render(list);
        assert_eq!(out["kind"], "PartialObjectMetadataList");
        assert_eq!(out["items"], serde_json::Value::Null);
    }
}
