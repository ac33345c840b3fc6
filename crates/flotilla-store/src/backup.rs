//! Backups: a consistent snapshot of every object as JSON lines, whatever the backend.
//!
//! ```text
//! {"kind":"FlotillaBackup","version":1,"revision":R}
//! {"key":"/core/configmaps/default/a","createRevision":3,"labels":[["k","v"]],"fields":[],"object":{...}}
//! ...
//! {"end":true,"objects":N}
//! ```
//!
//! The last line proves the file complete. A restore into the embedded store keeps every
//! object's revisions and the store's revision; a restore into etcd writes the objects anew
//! (etcd assigns revisions), so clients re-list.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::object::{Attrs, Event, EventKind, Object, Precondition, Revision, Write};
use crate::{Backend, Error, RedbBackend, Snapshot, Store};

/// The first line of a backup of `snapshot`.
pub fn header(snapshot: &Snapshot) -> Bytes {
    line(&json!({"kind": "FlotillaBackup", "version": 1, "revision": snapshot.rev}))
}

/// The line of one object.
pub fn object_line(obj: &Object) -> Bytes {
    let pairs = |l: &[(Box<str>, Box<str>)]| -> Value {
        l.iter()
            .map(|(k, v)| json!([k.as_ref(), v.as_ref()]))
            .collect()
    };
    let head = json!({
        "key": obj.key.as_ref(),
        "createRevision": obj.create_rev,
        "labels": pairs(&obj.attrs.labels),
        "fields": pairs(&obj.attrs.fields),
    });
    let mut out = serde_json::to_vec(&head).expect("JSON encodes");
    out.pop();
    out.extend_from_slice(b",\"object\":");
    out.extend_from_slice(&obj.data);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// The last line, after `count` objects.
pub fn trailer(count: usize) -> Bytes {
    line(&json!({"end": true, "objects": count}))
}

fn line(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).expect("JSON encodes");
    out.push(b'\n');
    Bytes::from(out)
}

type Pairs = Vec<(Box<str>, Box<str>)>;

/// A backup read back.
#[derive(Debug)]
pub struct Backup {
    /// The store's revision when the backup was taken.
    pub revision: Revision,
    /// Every object.
    pub objects: Vec<Object>,
}

/// Reads and checks a backup: the header, every object line, the trailer and its count.
pub fn read(input: impl BufRead) -> Result<Backup, Error> {
    let bad = |n: usize, what: &str| Error::Corrupt(format!("backup line {n}: {what}"));
    let mut lines = input.lines().enumerate();
    let (_, first) = lines
        .next()
        .ok_or_else(|| Error::Corrupt("the backup is empty".into()))?;
    let first = first.map_err(|e| bad(1, &e.to_string()))?;
    let head: Value = serde_json::from_str(&first).map_err(|e| bad(1, &e.to_string()))?;
    if head["kind"] != "FlotillaBackup" || head["version"] != 1 {
        return Err(bad(1, "not a Flotilla backup (version 1)"));
    }
    let revision = head["revision"]
        .as_u64()
        .ok_or_else(|| bad(1, "no revision"))?;
    let mut objects = Vec::new();
    for (i, l) in lines {
        let n = i + 1;
        let l = l.map_err(|e| bad(n, &e.to_string()))?;
        let v: Value = serde_json::from_str(&l).map_err(|e| bad(n, &e.to_string()))?;
        if v["end"] == true {
            if v["objects"].as_u64() != Some(objects.len() as u64) {
                return Err(bad(
                    n,
                    &format!(
                        "the end line counts {} objects, the backup holds {}",
                        v["objects"],
                        objects.len()
                    ),
                ));
            }
            return Ok(Backup { revision, objects });
        }
        let key = v["key"].as_str().ok_or_else(|| bad(n, "no key"))?;
        let data = v.get("object").ok_or_else(|| bad(n, "no object"))?;
        let mod_rev = data["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| bad(n, "the object has no resourceVersion"))?;
        let pairs = |f: &str| -> Result<Pairs, Error> {
            v[f].as_array()
                .ok_or_else(|| bad(n, &format!("no {f}")))?
                .iter()
                .map(|p| match (p[0].as_str(), p[1].as_str()) {
                    (Some(k), Some(v)) => Ok((k.into(), v.into())),
                    _ => Err(bad(n, &format!("bad {f}"))),
                })
                .collect()
        };
        objects.push(Object {
            key: Arc::from(key),
            create_rev: v["createRevision"].as_u64().unwrap_or(mod_rev),
            mod_rev,
            attrs: Attrs {
                labels: pairs("labels")?,
                fields: pairs("fields")?,
            },
            data: Bytes::from(serde_json::to_vec(data).expect("JSON encodes")),
        });
    }
    Err(Error::Corrupt(
        "the backup is truncated (no end line)".into(),
    ))
}

/// Restores `backup` into a new embedded store file at `path`, keeping every revision.
/// Refuses a file that already holds objects.
pub fn restore_redb(path: &Path, backup: &Backup) -> Result<(), Error> {
    let backend = RedbBackend::open(path)?;
    let loaded = backend.load()?;
    if !loaded.objects.is_empty() || loaded.revision > 0 {
        return Err(Error::Invalid(format!(
            "{} already holds a store (revision {}); restore into an empty data directory",
            path.display(),
            loaded.revision
        )));
    }
    let events: Vec<Arc<Event>> = backup
        .objects
        .iter()
        .map(|o| {
            Arc::new(Event {
                rev: o.mod_rev,
                kind: EventKind::Put,
                object: Arc::new(o.clone()),
                prev: None,
            })
        })
        .collect();
    let top = backup
        .objects
        .iter()
        .map(|o| o.mod_rev)
        .max()
        .unwrap_or(0)
        .max(backup.revision);
    backend.persist(&events, top)
}

/// Restores `backup` into `store` (etcd), which must hold no objects; `progress` is called
/// with the number written so far.
pub async fn restore_into(
    store: &Store,
    backup: Backup,
    mut progress: impl FnMut(usize),
) -> Result<(), Error> {
    store.sync().await?;
    if store.snapshot().range("/", None).next().is_some() {
        return Err(Error::Invalid(
            "the target store already holds objects; restore into an empty prefix".into(),
        ));
    }
    let mut set = tokio::task::JoinSet::new();
    let mut done: usize = 0;
    for obj in backup.objects {
        if set.len() >= 64 {
            if let Some(r) = set.join_next().await {
                r.map_err(|e| Error::backend("restore", e))??;
                done += 1;
                if done.is_multiple_of(1000) {
                    progress(done);
                }
            }
        }
        let store = store.clone();
        set.spawn(async move {
            let value: Value = serde_json::from_slice(&obj.data)
                .map_err(|e| Error::Corrupt(format!("object {}: {e}", obj.key)))?;
            store
                .write(
                    &obj.key,
                    Write::Put {
                        value,
                        attrs: obj.attrs.clone(),
                        precondition: Precondition::MustNotExist,
                    },
                )
                .await
                .map(|_| ())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| Error::backend("restore", e))??;
        done += 1;
    }
    progress(done);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backup_reads_back_and_restores_with_its_revisions() {
        let store = Store::memory();
        for (i, name) in ["a", "b"].iter().enumerate() {
            store
                .write(
                    &format!("/core/configmaps/default/{name}"),
                    Write::Put {
                        value: json!({"metadata": {"name": name}, "data": {"i": i}}),
                        attrs: Attrs {
                            labels: vec![("app".into(), "x".into())],
                            fields: vec![],
                        },
                        precondition: Precondition::None,
                    },
                )
                .await
                .unwrap();
        }
        let snap = store.snapshot();
        let mut bytes = header(&snap).to_vec();
        let mut n = 0;
        for o in snap.range("/", None) {
            bytes.extend_from_slice(&object_line(o));
            n += 1;
        }
        bytes.extend_from_slice(&trailer(n));
        let backup = read(&bytes[..]).unwrap();
        assert_eq!(backup.revision, 2);
        assert_eq!(backup.objects.len(), 2);
        assert_eq!(
            backup.objects[1],
            **snap.get("/core/configmaps/default/b").unwrap()
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        restore_redb(&path, &backup).unwrap();
        // A second restore into the same file is refused.
        let err = restore_redb(&path, &backup).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        let restored = Store::open(RedbBackend::open(&path).unwrap(), Default::default()).unwrap();
        assert_eq!(restored.revision(), 2);
        assert_eq!(
            restored.get("/core/configmaps/default/a").unwrap(),
            *snap.get("/core/configmaps/default/a").unwrap()
        );

        // Truncated, altered and foreign files are refused.
        let refusal = |r: Result<Backup, Error>| r.map(|_| ()).unwrap_err().to_string();
        let cut = &bytes[..bytes.len() - 20];
        assert_eq!(
            refusal(read(cut)),
            "stored data is corrupt: backup line 4: EOF while parsing a string at line 1 column 5"
        );
        let without_end = &bytes[..bytes.len() - trailer(n).len()];
        assert_eq!(
            refusal(read(without_end)),
            "stored data is corrupt: the backup is truncated (no end line)"
        );
        assert_eq!(
            refusal(read(&b"{\"kind\":\"Other\"}\n"[..])),
            "stored data is corrupt: backup line 1: not a Flotilla backup (version 1)"
        );
        assert_eq!(
            refusal(read(&b""[..])),
            "stored data is corrupt: the backup is empty"
        );
        let mut wrong_count = header(&snap).to_vec();
        wrong_count.extend_from_slice(&trailer(1));
        assert_eq!(refusal(read(&wrong_count[..])), "stored data is corrupt: backup line 2: the end line counts 1 objects, the backup holds 0");
    }
}
