//! Label selectors (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) and field selectors
//! (`metadata.name=x,status.phase!=Running`) as list and watch filters.

use ferry_proto::selector;
use serde_json::Value;

use super::status::ApiError;

/// A parsed `labelSelector` ([`ferry_proto::selector`]); the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(selector::LabelSelector);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        selector::LabelSelector::parse(s)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.0
            .matches(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }
}

/// A parsed `fieldSelector`: equality on dotted paths into the object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, eq, val) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {part:?}: expected field=value or field!=value"
                )));
            };
            reqs.push((path.trim().to_string(), eq, val.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = Some(obj);
            for seg in path.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let have = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_cover_the_kubernetes_syntax() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let m = |s: &str| LabelSelector::parse(s).expect(s).matches(&obj);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("app in (api, web)"));
        assert!(!m("app notin (web)"));
        assert!(m("missing notin (x)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("tier in (front),app=web"));
        let err = LabelSelector::parse("a in x").expect_err("no parentheses");
        assert_eq!(err.code, 400);
        assert!(err.message.contains("\"a in x\""), "{}", err.message);
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn field_selectors_compare_dotted_paths() {
        let obj = json!({"metadata": {"name": "x", "namespace": "a"}, "type": "Opaque"});
        let m = |s: &str| FieldSelector::parse(s).expect(s).matches(&obj);
        assert!(m("metadata.name=x"));
        assert!(m("metadata.name=x,metadata.namespace!=b"));
        assert!(!m("type==helm.sh/release.v1"));
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
