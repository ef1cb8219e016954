//! The commands on the in-memory store, without a server: migrate, the
//! bucket check of a rerun (what it asks the store), offload's decisions
//! and restore, each against what the store holds.

use std::path::Path;

use crate::cancel::Stop;
use crate::cli::{Command, command_of};
use crate::digest::Digests;
use crate::progress::Progress;
use crate::settings::{MigrateSettings, OffloadSettings, RestoreSettings};
use crate::store::memory::MemoryStore;
use crate::store::{Checksums, StoreError};

/// A tree of media with a duplicate, its state and maps beside it.
struct Shop {
    dir: tempfile::TempDir,
}

impl Shop {
    fn new(files: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (rel, data) in files {
            let p = dir.path().join("media").join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        Self { dir }
    }

    fn path(&self, what: &str) -> String {
        self.dir.path().join(what).display().to_string()
    }

    fn cli(&self, command: &str, extra: &[&str]) -> Command {
        let mut args = vec![
            "mediashift".to_string(),
            command.to_string(),
            self.path("media"),
        ];
        if command != "restore" {
            args.push("s3://bucket/p/".into());
        }
        args.extend(["--state".into(), self.path("state")]);
        args.extend(extra.iter().map(|s| s.to_string()));
        command_of(args).unwrap()
    }

    async fn migrate(
        &self,
        store: &MemoryStore,
        extra: &[&str],
    ) -> crate::commands::migrate::Migrated {
        let mut all = vec!["--map-dir", "MAPS", "--no-progress"];
        all.extend_from_slice(extra);
        let maps = self.path("maps");
        let all: Vec<&str> = all
            .into_iter()
            .map(|a| if a == "MAPS" { maps.as_str() } else { a })
            .collect();
        let Command::Migrate(args) = self.cli("migrate", &all) else {
            unreachable!()
        };
        let settings = MigrateSettings::from_args(&args, true, true).unwrap();
        let s = store.clone();
        super::migrate::run_on(&settings, &Progress::none(), Stop::default(), async || {
            Ok::<_, StoreError>(s)
        })
        .await
        .unwrap()
    }

    async fn offload(&self, store: &MemoryStore) -> crate::cutover::offload::Offloaded {
        let q = self.path("quarantine");
        let Command::Offload(args) = self.cli("offload", &["--quarantine", &q]) else {
            unreachable!()
        };
        let settings = OffloadSettings::from_args(&args, true).unwrap();
        let s = store.clone();
        super::offload::run_on(&settings, &Progress::none(), async || {
            Ok::<_, StoreError>(s)
        })
        .await
        .unwrap()
    }

    async fn restore_from(&self, store: &MemoryStore) -> crate::cutover::restore::Restored {
        let Command::Restore(args) = self.cli("restore", &["--from", "s3://bucket/p/"]) else {
            unreachable!()
        };
        let settings = RestoreSettings::from_args(&args, true).unwrap();
        let from = crate::cutover::restore::Source::Bucket {
            store,
            bucket: "bucket",
        };
        super::restore::run_on(&settings, from, &Progress::none())
            .await
            .unwrap()
    }

    fn file(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(Path::new(&self.path("media")).join(rel)).ok()
    }
}

fn files() -> Vec<(String, Vec<u8>)> {
    let mut f: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("c/{i:02}.jpg"), format!("image {i}").into_bytes()))
        .collect();
    f.push(("d/copy.jpg".into(), b"image 7".to_vec()));
    f
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_asks_the_store_only_for_a_sample_and_lists_when_one_is_gone() {
    let files = files();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    let shop = Shop::new(&refs);
    let store = MemoryStore::new();
    let first = shop.migrate(&store, &[]).await;
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_eq!(store.keys().len(), files.len(), "an object per file");
    assert!(
        store
            .log()
            .iter()
            .any(|l| l.starts_with("CopyObject p/c/07.jpg -> p/d/copy.jpg")),
        "the duplicate copied"
    );

    // A rerun over unchanged files: no listing, a sample of HEADs at most.
    store.clear_log();
    let again = shop.migrate(&store, &[]).await;
    assert!(again.uploaded.is_empty());
    let log = store.log();
    assert!(
        !log.iter().any(|l| l.starts_with("ListObjectsV2")),
        "{log:?}"
    );
    let heads = log.iter().filter(|l| l.starts_with("HeadObject")).count();
    assert!(heads <= 32, "{heads} HEADs");

    // An object gone that the sample finds (the first one is always in
    // it): the whole bucket is listed, and the object put back.
    store.remove("p/c/00.jpg");
    store.clear_log();
    let fixed = shop.migrate(&store, &[]).await;
    let log = store.log();
    assert!(
        log.iter().any(|l| l.starts_with("ListObjectsV2")),
        "{log:?}"
    );
    assert_eq!(fixed.uploaded.len(), 1);
    assert_eq!(store.object("p/c/00.jpg").unwrap().as_ref(), b"image 0");
}

#[tokio::test(flavor = "multi_thread")]
async fn offload_lets_a_file_go_only_with_its_own_object_proven_and_restore_checks_each() {
    let shop = Shop::new(&[
        ("a.jpg", b"same"),
        ("b.jpg", b"same"),
        ("c.jpg", b"other"),
        ("d.jpg", b"fourth"),
    ]);
    let store = MemoryStore::new();
    shop.migrate(&store, &[]).await;
    // b's own copy holds other bytes now (with a matching claim): its
    // checksum tells. d's object is gone.
    let wrong = Digests::of_bytes(b"fake");
    store.put_raw(
        "p/b.jpg",
        b"fake",
        &[("sha256", &wrong.sha256.to_hex())],
        Checksums::only(
            crate::checksum::Algorithm::Crc64nvme,
            wrong.crc64.to_base64(),
            None,
        ),
    );
    store.remove("p/d.jpg");
    let done = shop.offload(&store).await;
    let kept: Vec<(&str, &str)> = done
        .kept
        .iter()
        .map(|k| (k.path.as_str(), k.reason.name()))
        .collect();
    assert_eq!(
        kept,
        [("b.jpg", "object differs"), ("d.jpg", "object missing")]
    );
    let gone: Vec<&str> = done.offloaded.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(gone, ["a.jpg", "c.jpg"]);
    assert!(shop.file("a.jpg").is_none() && shop.file("b.jpg").is_some());

    // From the bucket: a.jpg's object is right, c.jpg's is replaced with
    // other bytes: only a.jpg comes back.
    store.put_raw("p/c.jpg", b"wrong", &[], Checksums::default());
    let back = shop.restore_from(&store).await;
    let restored: Vec<&str> = back.restored.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(restored, ["a.jpg"]);
    assert_eq!(back.kept.len(), 1, "{:?}", back.kept);
    assert_eq!(back.kept[0].path, "c.jpg");
    assert_eq!(shop.file("a.jpg").unwrap(), b"same");
    assert!(
        shop.file("c.jpg").is_none(),
        "never written with the wrong bytes"
    );
}
