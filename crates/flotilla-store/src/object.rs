//! Stored objects, the writes that change them and the events those writes produce.

use std::sync::Arc;

use bytes::Bytes;

/// A position in the store's single, global history. Every write gets the next revision; the
/// API server serves it as `metadata.resourceVersion`.
pub type Revision = u64;

/// Attributes of an object that list and watch filters look at without parsing the object:
/// its labels and the kind-specific selectable fields (`spec.nodeName`, `type`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// `metadata.labels`, as key/value pairs.
    pub labels: Vec<(Box<str>, Box<str>)>,
    /// Field-selector values, as path/value pairs (`metadata.name` and `metadata.namespace`
    /// are derived from the key and need not be listed).
    pub fields: Vec<(Box<str>, Box<str>)>,
}

impl Attrs {
    /// The value of label `key`, if the object has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    /// The value of selectable field `path`, if the object has it.
    pub fn field(&self, path: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| &**k == path)
            .map(|(_, v)| &**v)
    }
}

/// One stored object, immutable once written. `data` is the object's JSON with
/// `metadata.resourceVersion` already set to `mod_rev`, so reads copy bytes and parse nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The object's key, e.g. `/apps/deployments/default/web`.
    pub key: Arc<str>,
    /// The revision that created the object.
    pub create_rev: Revision,
    /// The revision of the object's last change (its resourceVersion).
    pub mod_rev: Revision,
    /// Selector attributes.
    pub attrs: Attrs,
    /// The object's JSON encoding, resourceVersion included.
    pub data: Bytes,
}

/// What a write requires of the object's current state; a write whose precondition fails
/// changes nothing and returns [`crate::Error::Conflict`] or [`crate::Error::AlreadyExists`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Write whatever the current state.
    None,
    /// The key must not exist (create).
    MustNotExist,
    /// The key must exist (update or delete of the latest state).
    MustExist,
    /// The key must exist with this mod revision (optimistic concurrency).
    ModRevision(Revision),
}

/// A change to one key.
#[derive(Debug, Clone)]
pub enum Write {
    /// Store `value` under the key. The store sets `metadata.resourceVersion` in it.
    Put {
        /// The object, as JSON.
        value: serde_json::Value,
        /// Its selector attributes.
        attrs: Attrs,
        /// What the current state must be.
        precondition: Precondition,
    },
    /// Remove the key. `last` is the object's final state, which delete events carry (with the
    /// deletion's revision as its resourceVersion, as kube-apiserver reports it).
    Delete {
        /// The final state of the object.
        last: serde_json::Value,
        /// What the current state must be.
        precondition: Precondition,
    },
}

/// Whether an event stored or removed its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or changed.
    Put,
    /// The key was removed.
    Delete,
}

/// One committed change. `object` is the new state (for a delete, the final state rendered at
/// the deletion's revision); `prev` is the state before, if the key existed.
#[derive(Debug, Clone)]
pub struct Event {
    /// The revision this change was committed at.
    pub rev: Revision,
    /// Stored or removed.
    pub kind: EventKind,
    /// The state after the change (or the final state for a delete).
    pub object: Arc<Object>,
    /// The state before the change.
    pub prev: Option<Arc<Object>>,
}

impl Event {
    /// The key the event concerns.
    pub fn key(&self) -> &str {
        &self.object.key
    }
}

/// Sets `metadata.resourceVersion` in `value` and encodes it.
pub(crate) fn render(value: &mut serde_json::Value, rev: Revision) -> Bytes {
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.insert(
            "resourceVersion".to_string(),
            serde_json::Value::String(rev.to_string()),
        );
    }
    Bytes::from(serde_json::to_vec(value).expect("a JSON value always encodes"))
}

/// Binary record format for persisted objects: version byte, revisions, attributes, data.
pub(crate) mod codec {
    use super::*;

    const VERSION: u8 = 1;

    pub(crate) fn encode(obj: &Object) -> Vec<u8> {
        let mut out = Vec::with_capacity(obj.data.len() + 64);
        out.push(VERSION);
        out.extend_from_slice(&obj.create_rev.to_le_bytes());
        out.extend_from_slice(&obj.mod_rev.to_le_bytes());
        write_attrs(&mut out, &obj.attrs);
        out.extend_from_slice(&obj.data);
        out
    }

    /// Appends selector attributes (shared with the etcd record).
    pub(crate) fn write_attrs(out: &mut Vec<u8>, attrs: &Attrs) {
        for list in [&attrs.labels, &attrs.fields] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for (k, v) in list.iter() {
                for s in [k, v] {
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }

    pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

    impl<'a> Reader<'a> {
        pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }
        pub(crate) fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
        }
        fn string(&mut self) -> Option<Box<str>> {
            let n = self.u32()? as usize;
            std::str::from_utf8(self.take(n)?).ok().map(Box::from)
        }
        /// Selector attributes written by [`write_attrs`].
        pub(crate) fn attrs(&mut self) -> Option<Attrs> {
            let mut lists = [Vec::new(), Vec::new()];
            for list in lists.iter_mut() {
                let n = self.u32()?;
                for _ in 0..n {
                    list.push((self.string()?, self.string()?));
                }
            }
            let [labels, fields] = lists;
            Some(Attrs { labels, fields })
        }
    }

    pub(crate) fn decode(key: &str, bytes: &[u8]) -> Option<Object> {
        let mut r = Reader(bytes);
        if r.take(1)? != [VERSION] {
            return None;
        }
        let create_rev = r.u64()?;
        let mod_rev = r.u64()?;
        let attrs = r.attrs()?;
        Some(Object {
            key: Arc::from(key),
            create_rev,
            mod_rev,
            attrs,
            data: Bytes::copy_from_slice(r.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips() {
        let obj = Object {
            key: Arc::from("/core/configmaps/default/a"),
            create_rev: 3,
            mod_rev: 9,
            attrs: Attrs {
                labels: vec![("app".into(), "web".into()), ("tier".into(), "".into())],
                fields: vec![("type".into(), "Opaque".into())],
            },
            data: Bytes::from_static(br#"{"a":1}"#),
        };
        let bytes = codec::encode(&obj);
        assert_eq!(codec::decode(&obj.key, &bytes), Some(obj.clone()));
        // A truncated record is rejected rather than misread.
        assert_eq!(codec::decode(&obj.key, &bytes[..10]), None);
        assert_eq!(codec::decode(&obj.key, &[2]), None);
    }

    #[test]
    fn render_sets_resource_version() {
        let mut v = serde_json::json!({"metadata": {"name": "a"}, "data": {}});
        let bytes = render(&mut v, 42);
        let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "42");
    }
}
