//! Strategic merges convert only what the patch reaches.
//!
//! The merge (`ferry_proto::merge::strategic`) works on `serde_json` trees, where a CRD's
//! schema costs 3–4× its YAML (see `crate::value`). A kubebuilder-style patch adds
//! `spec.conversion` to a CRD of a megabyte; converting all of it, twice, was most of such a
//! build's peak memory. The merge leaves every map key that the patch does not name exactly as
//! it was (directives aside), so those subtrees stay behind as compact values and the merge sees
//! a placeholder string in their place; [`fill`] moves them back into the result.

use crate::value::Value;
use ferry_proto::merge::json_patch;

/// Marks a placeholder; followed by the index of the kept subtree.
const MARK: &str = "\u{0}ferry-kustomize:kept:";

/// The subtrees standing out of the merge, by placeholder index.
#[derive(Default)]
pub struct Kept(Vec<Option<Value>>);

/// `target` as a `serde_json` tree in which the map keys that `patch` does not name (at a map
/// level without `$` directives, which may act on siblings) are placeholders; nothing is
/// hollowed when the patch itself holds a placeholder-like string.
pub fn hollow(target: Value, patch: &serde_json::Value, kept: &mut Kept) -> serde_json::Value {
    if mentions_mark(patch) {
        return target.into();
    }
    split(target, patch, kept)
}

fn split(target: Value, patch: &serde_json::Value, kept: &mut Kept) -> serde_json::Value {
    match (target, patch) {
        (Value::Object(map), serde_json::Value::Object(p))
            if !p.keys().any(|k| k.starts_with('$')) =>
        {
            let converted = map.into_iter().map(|(k, v)| {
                let v = match p.get(&k) {
                    Some(pv) => split(v, pv, kept),
                    None => kept.hold(v),
                };
                (k, v)
            });
            serde_json::Value::Object(converted.collect())
        }
        (other, _) => other.into(),
    }
}

/// What a JSON patch reaches: the map keys along its operations' paths, where a sequence
/// position stands for every item (an earlier `remove` or `add` shifts positions), and the
/// subtrees a `test` compares, which convert whole.
#[derive(Clone, Default)]
pub struct Reach {
    whole: bool,
    children: Vec<(String, Reach)>,
}

impl Reach {
    /// The reach of `ops`; `None` when an operation moves or copies (later paths may then
    /// lead through a subtree under another name) or carries a placeholder-like string.
    pub fn of(ops: &[json_patch::PatchOperation]) -> Option<Reach> {
        use json_patch::PatchOperation as Op;
        let mut reach = Reach::default();
        for op in ops {
            let (path, whole, value) = match op {
                Op::Add(o) => (o.path.to_string(), false, Some(&o.value)),
                Op::Replace(o) => (o.path.to_string(), false, Some(&o.value)),
                Op::Remove(o) => (o.path.to_string(), false, None),
                Op::Test(o) => (o.path.to_string(), true, Some(&o.value)),
                Op::Move(_) | Op::Copy(_) => return None,
            };
            if value.is_some_and(mentions_mark) {
                return None;
            }
            let mut node = &mut reach;
            for token in path.split('/').skip(1) {
                let token = token.replace("~1", "/").replace("~0", "~");
                let i = match node.children.iter().position(|(t, _)| *t == token) {
                    Some(i) => i,
                    None => {
                        node.children.push((token, Reach::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[i].1;
            }
            node.whole |= whole || path.is_empty();
        }
        Some(reach)
    }

    fn child(&self, key: &str) -> Option<&Reach> {
        self.children.iter().find(|(t, _)| t == key).map(|(_, r)| r)
    }

    /// Every position of a sequence: the union of the children named by a number.
    fn items(&self) -> Reach {
        let mut all = Reach::default();
        for (t, r) in &self.children {
            if t.parse::<usize>().is_ok() {
                all.union(r);
            }
        }
        all
    }

    fn union(&mut self, other: &Reach) {
        self.whole |= other.whole;
        for (t, r) in &other.children {
            match self.children.iter_mut().find(|(s, _)| s == t) {
                Some((_, mine)) => mine.union(r),
                None => self.children.push((t.clone(), r.clone())),
            }
        }
    }
}

/// `target` as a `serde_json` tree converted only along `reach`; everything else is a
/// placeholder.
pub fn hollow_reach(target: Value, reach: &Reach, kept: &mut Kept) -> serde_json::Value {
    if reach.whole {
        return target.into();
    }
    match target {
        Value::Object(map) => {
            let converted = map.into_iter().map(|(k, v)| {
                let v = match reach.child(&k) {
                    Some(r) => hollow_reach(v, r, kept),
                    None => kept.hold(v),
                };
                (k, v)
            });
            serde_json::Value::Object(converted.collect())
        }
        Value::Array(items) => {
            let r = reach.items();
            serde_json::Value::Array(
                items
                    .into_iter()
                    .map(|v| hollow_reach(v, &r, kept))
                    .collect(),
            )
        }
        other => other.into(),
    }
}

impl Kept {
    fn hold(&mut self, v: Value) -> serde_json::Value {
        self.0.push(Some(v));
        serde_json::Value::String(format!("{MARK}{}", self.0.len() - 1))
    }
}

fn mentions_mark(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.starts_with(MARK),
        serde_json::Value::Array(a) => a.iter().any(mentions_mark),
        serde_json::Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with(MARK) || mentions_mark(v)),
        _ => false,
    }
}

/// Puts the kept subtrees back in place of their placeholders.
pub fn fill(v: &mut Value, kept: &mut Kept) {
    if kept.0.is_empty() {
        return;
    }
    match v {
        Value::String(s) => {
            let back = s
                .strip_prefix(MARK)
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| kept.0.get_mut(i))
                .and_then(Option::take);
            if let Some(back) = back {
                *v = back;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| fill(x, kept)),
        Value::Object(m) => m.values_mut().for_each(|x| fill(x, kept)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;
    use ferry_proto::merge::strategic;

    fn merge(target: serde_json::Value, patch: serde_json::Value) -> Value {
        let mut kept = Kept::default();
        let hollowed = hollow(Value::from(target), &patch, &mut kept);
        let merged = strategic::apply(&hollowed, &patch, None, strategic::Options::KUSTOMIZE)
            .expect("merges")
            .expect("not deleted");
        let mut merged = Value::from(merged);
        fill(&mut merged, &mut kept);
        merged
    }

    #[test]
    fn untouched_subtrees_come_back_and_patched_ones_merge() {
        let target = serde_json::json!({
            "kind": "CustomResourceDefinition",
            "spec": {"versions": [{"name": "v1", "schema": {"big": {"deep": [1, 2]}}}],
                     "conversion": {"strategy": "None"}, "names": {"kind": "X"}}
        });
        let patch = serde_json::json!({"spec": {"conversion": {"strategy": "Webhook"}}});
        let full = strategic::apply(&target, &patch, None, strategic::Options::KUSTOMIZE)
            .expect("merges")
            .expect("not deleted");
        assert_eq!(merge(target, patch), full);
    }

    #[test]
    fn directives_and_replaced_maps_see_the_whole_level() {
        let target = serde_json::json!({"spec": {"a": {"x": 1}, "b": {"y": 2}, "c": 3}});
        let patch = serde_json::json!({"spec": {"$retainKeys": ["a"], "a": {"z": 4}}});
        let full = strategic::apply(&target, &patch, None, strategic::Options::KUSTOMIZE)
            .expect("merges")
            .expect("not deleted");
        assert_eq!(merge(target.clone(), patch), full);
        let replace = serde_json::json!({"spec": {"$patch": "replace", "q": 1}});
        assert_eq!(merge(target, replace), json!({"spec": {"q": 1}}));
    }

    fn json(target: serde_json::Value, ops: serde_json::Value) -> (Value, serde_json::Value) {
        let ops = json_patch::parse(&ops).expect("a JSON patch");
        let mut full = target.clone();
        json_patch::apply(&mut full, &ops).expect("applies");
        let mut kept = Kept::default();
        let reach = Reach::of(&ops.0).expect("hollowable");
        let mut doc = hollow_reach(Value::from(target), &reach, &mut kept);
        json_patch::apply(&mut doc, &ops).expect("applies hollowed");
        let mut doc = Value::from(doc);
        fill(&mut doc, &mut kept);
        (doc, full)
    }

    #[test]
    fn json_patches_see_their_paths_whatever_earlier_operations_shifted() {
        let target = serde_json::json!({
            "spec": {"versions": [
                {"name": "v1", "schema": {"p": {"a": 1}}, "served": true},
                {"name": "v2", "schema": {"p": {"b": 2}}, "served": true}
            ], "group": "x"},
            "metadata": {"name": "n"}
        });
        let ops = serde_json::json!([
            {"op": "remove", "path": "/spec/versions/0"},
            {"op": "add", "path": "/spec/versions/0/schema/p/c", "value": 3},
            {"op": "test", "path": "/spec/versions/0/served", "value": true},
            {"op": "replace", "path": "/spec/group", "value": "y"},
            {"op": "add", "path": "/spec/versions/-", "value": {"name": "v3"}}
        ]);
        let (hollowed, full) = json(target, ops);
        assert_eq!(hollowed, full);
    }

    #[test]
    fn moves_and_copies_are_not_hollowed() {
        let ops = serde_json::json!([{"op": "copy", "from": "/a", "path": "/b"}]);
        let ops = json_patch::parse(&ops).expect("a JSON patch");
        assert!(Reach::of(&ops.0).is_none());
    }

    #[test]
    fn a_patch_carrying_the_mark_hollows_nothing() {
        let target = serde_json::json!({"a": {"x": 1}, "b": 2});
        let patch = serde_json::json!({"b": format!("{MARK}0")});
        let merged = merge(target, patch);
        assert_eq!(merged, json!({"a": {"x": 1}, "b": format!("{MARK}0")}));
    }
}
