//! The bucket check: what the bucket already holds under the keys a plan
//! would write, judged by the proof rules against the files meant for
//! them, and what the journal of earlier runs proves without asking.
//!
//! A first run (or `--recheck`) streams the bucket listing, matching each
//! key to a planned object without a map of keys, asks (HEAD) only about
//! the objects it found, and hashes only files whose size matches theirs.
//! A rerun trusts the journal's proofs for unchanged files once a sample
//! of them is found in place, and asks only about the rest: by HEAD when
//! they are few, else by listing. `mediashift verify` checks every object.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::dedup::Grouping;
use super::plan::{self, Existence, Existing};
use super::scan::SourceFile;
use super::verify::{self, Local, Proof};
use crate::checksum::Algorithm;
use crate::digest::{self, DigestTable, Digests};
use crate::error::{Error, Result};
use crate::journal::{FileRow, FileState, Journal};
use crate::limits::PartLayout;
use crate::progress::Progress;
use crate::settings::RunSettings;
use crate::store::{BodyChecksum, ObjectStore, RemoteObject};

/// Runs `f` on the blocking pool (the walk and dedup read the disk).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| Error::Task {
            what: "a worker thread",
            source,
        })
}

/// What the journal of earlier runs says about the walked files, read a row
/// at a time and kept compact (a rerun over a million files holds no row).
#[derive(Debug, Default)]
pub struct Known {
    /// Digests of files unchanged since they were hashed (same size, mtime
    /// and inode): they are not read again. Dedup takes them over.
    pub digests: DigestTable,
    /// Per walked file, a hash of the key it is recorded verified under,
    /// if it is unchanged since (0: none).
    verified: Vec<u64>,
    /// Keys of verified files this run did not walk (another selection),
    /// with their recorded sizes: the maps keep those files only while
    /// their objects are there.
    pub outside: HashMap<String, u64>,
    /// Rows the journal holds (0 on a first run).
    pub rows: u64,
}

impl Known {
    /// Joins the journal's rows with the walk; both are in path order
    /// (byte order).
    pub fn read(journal: &Journal, files: &[SourceFile]) -> Result<Self> {
        let mut known = Self {
            digests: DigestTable::with_files(files.len()),
            verified: vec![0; files.len()],
            ..Self::default()
        };
        let mut i = 0;
        journal.each_file(|row: FileRow| -> Result<()> {
            known.rows += 1;
            while files.get(i).is_some_and(|f| *f.rel < *row.path) {
                i += 1;
            }
            let verified = row.state == FileState::Verified;
            let Some(f) = files.get(i).filter(|f| *f.rel == *row.path) else {
                if let (true, Some(_), Some(key)) = (verified, row.digests, row.key) {
                    known.outside.insert(key, row.size);
                }
                return Ok(());
            };
            if (row.size, row.mtime_ns, row.ino) != (f.size, f.mtime_ns, f.ino) {
                return Ok(());
            }
            if let Some(d) = row.digests {
                known.digests.insert(i as u32, d);
            }
            if let (true, Some(key)) = (verified, &row.key) {
                known.verified[i] = key_hash(key);
            }
            Ok(())
        })?;
        Ok(known)
    }

    /// Whether walked file `file`, unchanged, is recorded verified under
    /// `key`.
    pub fn verified_under(&self, file: u32, key: &str) -> bool {
        self.verified
            .get(file as usize)
            .is_some_and(|&h| h != 0 && h == key_hash(key))
    }
}

/// A key's 64-bit hash, never 0 (which stands for none).
fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() | 1
}

/// Objects of the journal asked about (HEAD) on a rerun before its proofs
/// are trusted: one missing (the prefix emptied, another bucket behind the
/// same name) and the whole bucket is checked instead.
const SPOT_CHECKS: usize = 32;

/// On a rerun, objects asked about one by one (HEAD) rather than listing
/// the bucket, at most one for this many journal rows: a listing page of a
/// thousand keys costs the server about what twenty HEADs do.
const HEADS_PER_ROW: usize = 20;

/// The check of one run: its store and settings, and what the journal of
/// earlier runs knows.
pub struct BucketCheck<'a, S> {
    pub store: &'a S,
    pub settings: &'a RunSettings,
    pub known: &'a Known,
    /// Ask about every object (`--recheck`): take none of the journal's
    /// proofs without the listing showing the object.
    pub recheck: bool,
    pub progress: &'a Progress,
}

/// What the check found.
#[derive(Debug)]
pub struct InBucket {
    /// The grouping, with the digests of the files hashed to compare.
    pub grouping: Grouping,
    /// What is under the planned keys, judged.
    pub existence: Existence,
    /// When the bucket was listed and the journal holds verified files
    /// this run did not walk, the size the listing shows for each of their
    /// keys (keys not listed are absent): the maps keep such files only if
    /// their object is still there. `None` otherwise: the journal's proofs
    /// stand (a sample of them was checked).
    pub outside: Option<HashMap<String, u64>>,
}

impl<S: ObjectStore> BucketCheck<'_, S> {
    /// What the bucket holds under the keys `keys` would write, judged by
    /// the proof rules against the files meant for them.
    ///
    /// A first run (or `--recheck`) lists the bucket and asks (HEAD) about
    /// each object under a planned key; a file the journal proves,
    /// unchanged, whose object the listing shows with its size, needs no
    /// HEAD. A rerun trusts the journal's proofs for unchanged files once a
    /// sample of them is found in place, and asks only about the rest: by
    /// HEAD when they are few, else by listing.
    pub async fn run(
        &self,
        files: &Arc<Vec<SourceFile>>,
        mut grouping: Grouping,
        keys: &plan::Keys,
    ) -> Result<InBucket> {
        let (store, settings, known, recheck, progress) = (
            self.store,
            self.settings,
            self.known,
            self.recheck,
            self.progress,
        );
        let n = keys.len();
        let readable = |o: usize| grouping.canonical[keys.file(o as u32) as usize].is_some();
        let key = |o: usize| keys.key(o as u32, files, &grouping).into_string();
        let proven: Vec<bool> = if known.rows == 0 {
            vec![false; n]
        } else {
            (0..n)
                .map(|o| readable(o) && known.verified_under(keys.file(o as u32), &key(o)))
                .collect()
        };
        let mut ex = Existence {
            found: HashMap::new(),
            by_journal: vec![false; n],
        };
        let mut trust = known.rows > 0 && !recheck;
        if trust && !spot_check(store, files, &grouping, keys, &proven, known, settings).await? {
            trust = false;
        }
        let unproven = proven.iter().filter(|p| !**p).count();
        let mut journal_objects = None;
        // Keys to ask about (HEAD), with their object.
        let mut ask: Vec<(String, u32)> = Vec::new();
        if trust && unproven * HEADS_PER_ROW <= known.rows as usize {
            for (o, &by_journal) in proven.iter().enumerate() {
                if by_journal {
                    ex.by_journal[o] = true;
                } else if readable(o) {
                    ask.push((key(o), o as u32));
                }
            }
        } else {
            let finder = keys.finder(files, &grouping);
            let mut outside = HashMap::new();
            let mut listed = vec![false; n];
            let listing = progress.counter("listing bucket");
            store
                .list(&settings.destination.prefix, |listed_key, size| {
                    listing.inc(1);
                    if let Some(o) = finder.find(listed_key) {
                        let o = o as usize;
                        listed[o] = true;
                        if !readable(o) {
                            return;
                        }
                        // Proven by the journal, and there with its size: no
                        // need to ask again (`mediashift verify` re-checks).
                        if proven[o] && files[keys.file(o as u32) as usize].size == size {
                            ex.by_journal[o] = true;
                        } else {
                            ask.push((listed_key.to_string(), o as u32));
                        }
                    }
                    if known.outside.contains_key(listed_key) {
                        outside.insert(listed_key.to_string(), size);
                    }
                })
                .await?;
            listing.finish();
            // Names some servers list mangled (SeaweedFS lists `\` as `/` and
            // collapses `//`) are asked about one by one if the listing did not
            // show them.
            for o in (0..n).filter(|&o| readable(o) && !listed[o]) {
                let k = key(o);
                if listings_mangle(&k) {
                    ask.push((k, o as u32));
                }
            }
            // Only files this run did not walk need their objects' sizes.
            if !known.outside.is_empty() {
                journal_objects = Some(outside);
            }
        }
        if ask.is_empty() {
            return Ok(InBucket {
                grouping,
                existence: ex,
                outside: journal_objects,
            });
        }

        let checking = progress.items("checking", ask.len() as u64);
        // Absent ones (or deleted since the listing) will be uploaded.
        let there: Vec<(String, u32, RemoteObject)> =
            heads(store, ask, settings.concurrency, || checking.inc(1))
                .await?
                .into_iter()
                .filter_map(|(key, o, r)| Some((key, o, r?)))
                .collect();
        checking.finish();

        // Hash the files whose digests are not known yet, where the sizes match
        // (a size mismatch needs no hash to tell).
        // (A duplicate's digests are its content's: its canonical file's.)
        let same_size: Vec<u32> = there
            .iter()
            .map(|(_, o, object)| (keys.file(*o), object.size))
            .filter(|(i, size)| files[*i as usize].size == *size)
            .filter_map(|(i, _)| grouping.canonical[i as usize])
            .collect();
        let (root, f, threads) = (
            settings.scan.root.clone(),
            files.clone(),
            settings.hash_threads,
        );
        grouping = blocking(move || {
            grouping.hash_more(&root, &f, &same_size, threads);
            grouping
        })
        .await?;

        // Judge each. Objects whose only checksum the digests cannot be
        // compared with (CRC32C, composite SHA-256) are judged again below.
        let mut rehash = Vec::new();
        for (_, o, object) in there {
            let i = keys.file(o);
            if grouping.canonical[i as usize].is_none() {
                continue; // could not be read to compare: failed in the plan
            }
            let file = &files[i as usize];
            let local = Local::file(file.size, grouping.digests_of(i));
            let proof = verify::prove(Some(&object), &local);
            let same_path = verify::from_same_path(&object, &file.rel);
            if let (Proof::Unproven { .. }, Some(w)) =
                (&proof, verify::wanted(&object, settings.rules.part_size))
            {
                rehash.push(Rehash {
                    object: o,
                    file: i,
                    remote: object,
                    wanted: w,
                });
            }
            ex.found.insert(
                o,
                Existing {
                    proof,
                    same_path,
                    checksum: None,
                },
            );
        }
        if !rehash.is_empty() {
            reprove(settings, files, &grouping, rehash, &mut ex.found).await?;
        }
        Ok(InBucket {
            grouping,
            existence: ex,
            outside: journal_objects,
        })
    }
}

/// Asks (HEAD) about a sample of the objects the journal proves, this
/// run's and those of files it did not walk: whether they are all in
/// place with their sizes. If not, says so.
async fn spot_check<S: ObjectStore>(
    store: &S,
    files: &[SourceFile],
    grouping: &Grouping,
    keys: &plan::Keys,
    proven: &[bool],
    known: &Known,
    settings: &RunSettings,
) -> Result<bool> {
    // The proven objects, then those of files not walked, with sizes.
    #[derive(Clone, Copy)]
    enum Pick<'a> {
        Object(u32),
        Outside(&'a str),
    }
    let pool = || {
        (0..keys.len() as u32)
            .filter(|&o| proven[o as usize])
            .map(|o| (Pick::Object(o), files[keys.file(o) as usize].size))
            .chain(known.outside.iter().map(|(k, s)| (Pick::Outside(k), *s)))
    };
    let total = pool().count();
    if total == 0 {
        return Ok(true);
    }
    // Spread over the whole run, first and last included.
    let n = total.min(SPOT_CHECKS);
    let picks: HashSet<usize> = (0..n).map(|j| j * (total - 1) / (n - 1).max(1)).collect();
    let sample: Vec<(String, u64)> = pool()
        .enumerate()
        .filter(|(j, _)| picks.contains(j))
        .map(|(_, (pick, size))| match pick {
            Pick::Object(o) => (keys.key(o, files, grouping).into_string(), size),
            Pick::Outside(k) => (k.to_string(), size),
        })
        .collect();
    let mut missing: Vec<String> = heads(store, sample, settings.concurrency, || ())
        .await?
        .into_iter()
        .filter(|(_, size, r)| r.as_ref().is_none_or(|o| o.size != *size))
        .map(|(key, _, _)| key)
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    missing.sort();
    tracing::warn!(
        "{} of {n} objects the journal holds as verified are not in the bucket with their size (first: {}): checking the whole bucket",
        missing.len(),
        missing[0]
    );
    Ok(false)
}

/// Asks (HEAD) about each key, `concurrency` at a time, calling `done`
/// after each answer: what is there (`None`: absent), with what each key
/// came with, in no fixed order.
async fn heads<S: ObjectStore, T: Send + 'static>(
    store: &S,
    keys: Vec<(String, T)>,
    concurrency: usize,
    mut done: impl FnMut(),
) -> Result<Vec<(String, T, Option<RemoteObject>)>> {
    let mut out = Vec::new();
    super::fan::at_most(
        concurrency,
        "a HEAD task",
        keys,
        |(key, with)| {
            let store = store.clone();
            async move {
                let r = store.head(&key).await;
                (key, with, r)
            }
        },
        |(key, with, r)| {
            done();
            out.push((key, with, r?));
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

/// Whether a listing may show `key` under another name on some servers.
fn listings_mangle(key: &str) -> bool {
    key.contains("//") || key.chars().any(|c| c == '\\' || c.is_control())
}

/// An object only the file's value in its own algorithm can prove.
struct Rehash {
    /// The plan's object.
    object: u32,
    file: u32,
    /// What the bucket holds under `key`.
    remote: RemoteObject,
    /// The algorithm, and the parts for a composite value.
    wanted: (Algorithm, Option<PartLayout>),
}

/// Judges again the objects only the file's value in their own algorithm
/// can prove, computing it from the file.
async fn reprove(
    settings: &RunSettings,
    files: &Arc<Vec<SourceFile>>,
    grouping: &Grouping,
    objects: Vec<Rehash>,
    existing: &mut HashMap<u32, Existing>,
) -> Result<()> {
    let (root, f) = (settings.scan.root.clone(), files.clone());
    let digests: Vec<Option<Digests>> = objects
        .iter()
        .map(|r| grouping.digests_of(r.file))
        .collect();
    let judged = blocking(move || {
        objects
            .into_iter()
            .zip(digests)
            .map(|(r, digests)| {
                let (o, remote, (algorithm, layout)) = (r.object, r.remote, r.wanted);
                let file = &f[r.file as usize];
                let proof = match digest::whole_checksum(&file.path(&root), algorithm, layout) {
                    Ok(value) => {
                        let whole = BodyChecksum { algorithm, value };
                        let local = Local::file(file.size, digests).with_checksum(Some(&whole));
                        (verify::prove(Some(&remote), &local), Some(whole.record()))
                    }
                    Err(e) => (
                        Proof::Unproven {
                            why: format!("the file could not be read to compare: {e}"),
                        },
                        None,
                    ),
                };
                (o, proof)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    for (o, (proof, checksum)) in judged {
        if let Some(e) = existing.get_mut(&o) {
            e.checksum = checksum.filter(|_| proof.is_proven());
            e.proof = proof;
        }
    }
    Ok(())
}
