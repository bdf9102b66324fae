//! Committing sink output on object stores (S3, GCS, Azure).
//!
//! Object stores have no rename: a commit copies the staged objects to the target prefix,
//! then (for `overwrite`) deletes the target's objects that the new output does not have,
//! then deletes the staging prefix. Every step can be repeated, and the staged objects stay
//! until the copy is journaled as done, so a crash at any point is finished by the next run.
//! Readers may see a mix of old and new objects while a commit runs.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::manifest::{MANIFEST, Manifest, Ownership, store_ownership};

/// The store serving a URL and the object path inside it.
pub fn store_of(ctx: &SessionContext, location: &str) -> Option<(Arc<dyn ObjectStore>, ObjPath)> {
    let url = url::Url::parse(location).ok()?;
    let base = url::Url::parse(&format!("{}://{}", url.scheme(), url.authority())).ok()?;
    let store = ctx
        .runtime_env()
        .object_store(
            datafusion::execution::object_store::ObjectStoreUrl::parse(base.as_str()).ok()?,
        )
        .ok()?;
    let path = ObjPath::from_url_path(url.path()).ok()?;
    Some((store, path))
}

fn no_store(location: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "etl",
        source: format!("no object store is registered for {location}").into(),
    }
}

/// Every object below a prefix, with its path relative to the prefix.
pub async fn list_relative(
    store: &dyn ObjectStore,
    prefix: &ObjPath,
) -> Result<Vec<(ObjPath, String, u64)>, object_store::Error> {
    let objects: Vec<object_store::ObjectMeta> = store.list(Some(prefix)).try_collect().await?;
    Ok(objects
        .into_iter()
        .map(|o| {
            let rel = o
                .location
                .as_ref()
                .strip_prefix(prefix.as_ref())
                .unwrap_or(o.location.as_ref())
                .trim_start_matches('/')
                .to_string();
            (o.location, rel, o.size)
        })
        .collect())
}

async fn read_manifest(store: &dyn ObjectStore, path: &ObjPath) -> Option<Manifest> {
    let bytes = store.get(path).await.ok()?.bytes().await.ok()?;
    Manifest::parse(&bytes)
}

fn manifest_beside(target: &ObjPath) -> ObjPath {
    let s = target.as_ref();
    let beside = match s.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.etl-manifest"),
        None => format!(".{s}.etl-manifest"),
    };
    ObjPath::parse(&beside).unwrap_or_else(|_| ObjPath::from(beside))
}

/// Who owns what is at an object-store target.
pub async fn ownership(
    ctx: &SessionContext,
    location: &str,
    single_file: bool,
    owner: (&str, &str),
) -> Result<Ownership, object_store::Error> {
    let (store, target) = store_of(ctx, location).ok_or_else(|| no_store(location))?;
    if single_file {
        let exists = store.head(&target).await.is_ok();
        let manifest = read_manifest(store.as_ref(), &manifest_beside(&target)).await;
        return Ok(store_ownership(
            &[],
            manifest,
            Some(exists),
            owner.0,
            owner.1,
            location,
        ));
    }
    let objects: Vec<String> = list_relative(store.as_ref(), &target)
        .await?
        .into_iter()
        .map(|(_, rel, _)| rel)
        .collect();
    let manifest = read_manifest(store.as_ref(), &target.clone().join(MANIFEST)).await;
    Ok(store_ownership(
        &objects, manifest, None, owner.0, owner.1, location,
    ))
}

/// Writes the manifest of a staged output (into the staging prefix, or beside a single
/// target object).
pub async fn prepare(
    ctx: &SessionContext,
    staging: &str,
    target: &str,
    single_file: bool,
    append: bool,
    owner: (&str, &str, &str),
) -> Result<(), object_store::Error> {
    let (store, staged) = store_of(ctx, staging).ok_or_else(|| no_store(staging))?;
    let (_, target_path) = store_of(ctx, target).ok_or_else(|| no_store(target))?;
    if single_file {
        let m = Manifest::new(owner.0, owner.1, owner.2, Vec::new());
        store
            .put(
                &manifest_beside(&target_path),
                PutPayload::from(m.to_bytes()),
            )
            .await?;
        return Ok(());
    }
    let mut files: Vec<String> = list_relative(store.as_ref(), &staged)
        .await?
        .into_iter()
        .map(|(_, rel, _)| rel)
        .filter(|r| r != MANIFEST)
        .collect();
    if append
        && let Some(old) = read_manifest(store.as_ref(), &target_path.clone().join(MANIFEST)).await
    {
        for f in old.files {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    files.sort();
    let m = Manifest::new(owner.0, owner.1, owner.2, files);
    store
        .put(
            &staged.clone().join(MANIFEST),
            PutPayload::from(m.to_bytes()),
        )
        .await?;
    Ok(())
}

/// Copies the staged objects into place and, for `overwrite`, removes the target objects
/// the new output does not have. Safe to repeat.
pub async fn swap(
    ctx: &SessionContext,
    staging: &str,
    target: &str,
    single_file: bool,
    append: bool,
) -> Result<(), object_store::Error> {
    let (store, staged) = store_of(ctx, staging).ok_or_else(|| no_store(staging))?;
    let (_, target_path) = store_of(ctx, target).ok_or_else(|| no_store(target))?;
    if single_file {
        return store.copy(&staged, &target_path).await;
    }
    let new = list_relative(store.as_ref(), &staged).await?;
    // The manifest goes last, so that it never lists an object not yet copied.
    let (manifest, data): (Vec<_>, Vec<_>) = new.iter().partition(|(_, rel, _)| rel == MANIFEST);
    for (from, rel, _) in data.iter().chain(manifest.iter()) {
        store.copy(from, &target_path.child_path(rel)).await?;
    }
    if !append {
        let keep: Vec<&String> = new.iter().map(|(_, rel, _)| rel).collect();
        for (old, rel, _) in list_relative(store.as_ref(), &target_path).await? {
            if !keep.contains(&&rel) {
                store.delete(&old).await?;
            }
        }
    }
    Ok(())
}

/// Removes every object of a staging place.
pub async fn remove(ctx: &SessionContext, staging: &str) -> Result<(), object_store::Error> {
    let Some((store, path)) = store_of(ctx, staging) else {
        return Ok(());
    };
    for (obj, _, _) in list_relative(store.as_ref(), &path).await? {
        store.delete(&obj).await?;
    }
    match store.delete(&path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the objects and prefixes directly below `parent` whose name `matches`.
pub async fn remove_matching(
    ctx: &SessionContext,
    parent: &str,
    matches: &dyn Fn(&str) -> bool,
) -> Result<(), object_store::Error> {
    let Some((store, path)) = store_of(ctx, parent) else {
        return Ok(());
    };
    let level = store.list_with_delimiter(Some(&path)).await?;
    let name = |p: &ObjPath| p.filename().map(str::to_string).unwrap_or_default();
    for dir in level.common_prefixes.iter().filter(|d| matches(&name(d))) {
        for (obj, _, _) in list_relative(store.as_ref(), dir).await? {
            store.delete(&obj).await?;
        }
    }
    for obj in level.objects.iter().filter(|o| matches(&name(&o.location))) {
        store.delete(&obj.location).await?;
    }
    Ok(())
}

/// Bytes and objects below a staging place.
pub async fn measure(ctx: &SessionContext, staging: &str) -> (u64, usize) {
    let Some((store, path)) = store_of(ctx, staging) else {
        return (0, 0);
    };
    match list_relative(store.as_ref(), &path).await {
        Ok(objs) if !objs.is_empty() => (objs.iter().map(|o| o.2).sum(), objs.len()),
        _ => match store.head(&path).await {
            Ok(m) => (m.size, 1),
            Err(_) => (0, 0),
        },
    }
}

/// True when a location holds an object, or a prefix with objects.
pub async fn exists_non_empty(ctx: &SessionContext, location: &str) -> bool {
    match store_of(ctx, location) {
        Some((store, path)) => {
            list_relative(store.as_ref(), &path)
                .await
                .is_ok_and(|l| l.iter().any(|(_, rel, _)| rel != MANIFEST))
                || store.head(&path).await.is_ok()
        }
        None => false,
    }
}

/// Extension trait: a child path made of several `/`-separated parts.
trait ChildPath {
    fn child_path(&self, rel: &str) -> ObjPath;
}

impl ChildPath for ObjPath {
    fn child_path(&self, rel: &str) -> ObjPath {
        // `rel` comes from a listing, so it is already encoded: parse, do not encode again.
        let s = if self.as_ref().is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.as_ref())
        };
        ObjPath::parse(&s).unwrap_or_else(|_| ObjPath::from(s))
    }
}
