//! The Kubernetes manifests in deploy/kubernetes/ and the commands its
//! README gives: what the README relies on is checked in the parsed YAML
//! (PyYAML under Debian's python3, as the crate has no YAML parser), and
//! the commands are run as the pods and the shells would run them, against
//! the test server. No cluster is involved: what only Kubernetes decides
//! (scheduling, volumes, retries) is not tested here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::{
    REPO, Tree, bytes, mediashift_env, run_ensure_script, server, stderr, stdout, target,
};

/// Debian's interpreter, where python3-yaml installs PyYAML (another
/// python3 first on the PATH may not have it).
const PYTHON: &str = "/usr/bin/python3";
const INSTALL: &str = "scripts/ensure-python-yaml (or: apt-get install python3-yaml)";
/// The variable an Indexed Job's pods get, and where its value comes from.
const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";
const INDEX_FIELD: &str = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
/// What the README's `kubectl` lines name.
const MIGRATE_JOB: &str = "mediashift-migrate";
const MERGE_JOB: &str = "mediashift-merge-maps";
const SECRET_KEYS: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"];

fn deploy_file(name: &str) -> PathBuf {
    Path::new(REPO).join("deploy/kubernetes").join(name)
}

/// Installs python3-yaml once per test binary if it is missing; fails with
/// the command that installs it, never skips.
fn ensure_yaml() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        run_ensure_script("ensure-python-yaml", INSTALL);
    });
}

/// Every YAML document in `file`, as JSON values.
fn yaml_documents(file: &Path) -> Vec<Value> {
    ensure_yaml();
    let out = Command::new(PYTHON)
        .args([
            "-c",
            "import yaml, json, sys; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} ({e}): install it with {INSTALL}"));
    assert!(
        out.status.success(),
        "{} is not valid YAML (or {PYTHON} cannot import yaml: {INSTALL}): {}",
        file.display(),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("PyYAML's output as JSON")
}

/// The one Job in deploy/kubernetes/`name`.
fn job(name: &str) -> Value {
    let docs = yaml_documents(&deploy_file(name));
    assert_eq!(docs.len(), 1, "{name}: one document, a Job");
    let job = docs.into_iter().next().unwrap();
    assert_eq!(job["apiVersion"], "batch/v1", "{name}: apiVersion");
    assert_eq!(job["kind"], "Job", "{name}: kind");
    assert_eq!(
        job["spec"]["template"]["spec"]["restartPolicy"], "Never",
        "{name}: restartPolicy Never (backoffLimitPerIndex and podFailurePolicy need it)"
    );
    job
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} must be a string, not {v}"))
}

fn uint(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} must be a non-negative integer, not {v}"))
}

/// The Job's one container.
fn container<'a>(job: &'a Value, name: &str) -> &'a Value {
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no containers"));
    assert_eq!(containers.len(), 1, "{name}: one container");
    &containers[0]
}

/// The container's command and args, one list. Kubernetes takes strings
/// only: an unquoted `4` in args is refused by the API server.
fn argv(container: &Value, name: &str) -> Vec<String> {
    let mut argv = Vec::new();
    for part in ["command", "args"] {
        for a in container[part].as_array().into_iter().flatten() {
            argv.push(str_of(a, &format!("{name}: every {part} item (quote numbers)")).to_string());
        }
    }
    argv
}

/// The value after `flag` (`--flag VALUE` or `--flag=VALUE`); panics if it
/// is given twice.
fn flag<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let eq = format!("{flag}=");
    let found: Vec<&str> = argv
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            if a == flag {
                Some(argv.get(i + 1).map_or("", String::as_str))
            } else {
                a.strip_prefix(&eq)
            }
        })
        .collect();
    assert!(found.len() <= 1, "{flag} is given more than once: {argv:?}");
    found.first().copied()
}

/// The names of the `--flags` in `argv`.
fn flag_names(argv: &[String]) -> BTreeSet<String> {
    argv.iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect()
}

/// `$(VAR)` replaced as the kubelet does in command and args: a variable
/// of the container's env gives its value, `$$` is a literal `$`, and a
/// reference to an unknown variable stays as it is.
fn k8s_expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some((name, r)) = after.strip_prefix('(').and_then(|r| r.split_once(')')) {
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = r;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn expansion_follows_kubernetes_rules() {
    let env = BTreeMap::from([("I".to_string(), "3".to_string())]);
    assert_eq!(k8s_expand("/state/shard-$(I)", &env), "/state/shard-3");
    assert_eq!(k8s_expand("$$(I)-$(J)-$I", &env), "$(I)-$(J)-$I");
}

/// A volume mount, with the claim behind it.
#[derive(Debug, Clone)]
struct Mount {
    path: String,
    read_only: bool,
    claim: Option<String>,
    claim_read_only: bool,
}

fn mounts(job: &Value, name: &str) -> Vec<Mount> {
    let volumes = job["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    container(job, name)["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let vol = str_of(&m["name"], "a volumeMount's name");
            let v = volumes
                .iter()
                .find(|v| v["name"] == vol)
                .unwrap_or_else(|| panic!("{name}: volumeMount {vol} has no volume"));
            let pvc = &v["persistentVolumeClaim"];
            Mount {
                path: str_of(&m["mountPath"], "mountPath").to_string(),
                read_only: m["readOnly"] == true,
                claim: pvc["claimName"].as_str().map(str::to_string),
                claim_read_only: pvc["readOnly"] == true,
            }
        })
        .collect()
}

/// The mount `path` is on.
fn mount_of<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| Path::new(path).starts_with(&m.path))
        .max_by_key(|m| m.path.len())
}

/// migrate-job.yaml, checked for everything the README relies on.
struct MigrateJob {
    shards: u64,
    argv: Vec<String>,
    image: String,
    media: Mount,
    state: Mount,
    secret: String,
}

impl MigrateJob {
    fn load() -> Self {
        let f = "migrate-job.yaml";
        let job = job(f);
        let spec = &job["spec"];
        assert_eq!(
            job["metadata"]["name"], MIGRATE_JOB,
            "{f}: the README waits for job/{MIGRATE_JOB}"
        );
        assert_eq!(spec["completionMode"], "Indexed", "{f}: completionMode");
        let completions = uint(&spec["completions"], "completions");
        let parallelism = uint(&spec["parallelism"], "parallelism");
        assert_eq!(
            completions, parallelism,
            "{f}: completions and parallelism go together"
        );
        let c = container(&job, f);
        let argv = argv(c, f);
        assert_eq!(
            argv.get(..2),
            Some(&["mediashift".to_string(), "migrate".to_string()][..]),
            "{f}: the container runs `mediashift migrate`: {argv:?}"
        );
        let shards: u64 = flag(&argv, "--shards")
            .unwrap_or_else(|| panic!("{f}: no --shards N in the args: {argv:?}"))
            .parse()
            .expect("--shards N");
        assert_eq!(
            completions, shards,
            "{f}: completions ({completions}) must equal --shards ({shards}): index I runs shard I of --shards"
        );
        assert_eq!(
            flag(&argv, "--shard"),
            None,
            "{f}: the index comes from {INDEX_VAR}, not --shard"
        );
        let per_index = uint(&spec["backoffLimitPerIndex"], "backoffLimitPerIndex");
        assert!(
            per_index >= 1,
            "{f}: backoffLimitPerIndex {per_index}: the README promises retries"
        );
        let max_failed = uint(&spec["maxFailedIndexes"], "maxFailedIndexes");
        assert!(
            max_failed <= completions,
            "{f}: maxFailedIndexes over completions"
        );
        assert_eq!(
            spec["podReplacementPolicy"], "Failed",
            "{f}: a replacement pod must wait for the one it replaces (one journal, one process)"
        );

        // The index, from the downward API.
        let env = c["env"].as_array().cloned().unwrap_or_default();
        let index = env
            .iter()
            .find(|e| e["name"] == INDEX_VAR)
            .unwrap_or_else(|| panic!("{f}: {INDEX_VAR} is not in the container's env"));
        assert_eq!(
            index["valueFrom"]["fieldRef"]["fieldPath"], INDEX_FIELD,
            "{f}: {INDEX_VAR} from the pod's completion-index annotation"
        );

        // The credentials, from one Secret.
        let mut secrets = BTreeSet::new();
        for key in SECRET_KEYS.iter().copied().chain(["AWS_ENDPOINT_URL"]) {
            match env.iter().find(|e| e["name"] == key) {
                Some(e) => {
                    assert!(
                        e.get("value").is_none(),
                        "{f}: {key} must not be written in the manifest"
                    );
                    let r = &e["valueFrom"]["secretKeyRef"];
                    secrets.insert(
                        str_of(&r["name"], &format!("{key}'s secretKeyRef.name")).to_string(),
                    );
                    assert_eq!(
                        r["key"], key,
                        "{f}: {key} from the Secret's key of that name"
                    );
                    if key != "AWS_ENDPOINT_URL" {
                        assert_ne!(r["optional"], true, "{f}: {key} is required");
                    }
                }
                None => {
                    let from = c["envFrom"].as_array().into_iter().flatten();
                    let names: Vec<_> = from
                        .filter_map(|s| s["secretRef"]["name"].as_str())
                        .collect();
                    assert!(
                        key == "AWS_ENDPOINT_URL" || !names.is_empty(),
                        "{f}: {key} neither from a secretKeyRef nor envFrom a Secret"
                    );
                    secrets.extend(names.into_iter().map(str::to_string));
                }
            }
        }
        assert_eq!(
            secrets.len(),
            1,
            "{f}: the credentials from one Secret: {secrets:?}"
        );

        // The media: a claim, mounted read-only.
        let mounts = mounts(&job, f);
        let source = &argv[2];
        let dest = &argv[3];
        assert!(
            dest.starts_with("s3://"),
            "{f}: migrate SOURCE_DIR s3://...: {argv:?}"
        );
        let media = mount_of(&mounts, source)
            .unwrap_or_else(|| panic!("{f}: SOURCE_DIR {source} is on no volume"))
            .clone();
        assert!(
            media.claim.is_some(),
            "{f}: the media from a PersistentVolumeClaim"
        );
        assert!(
            media.read_only && media.claim_read_only,
            "{f}: the media mounted read-only (volumeMounts and the claim): {media:?}"
        );

        // The state: one directory per index on one claim.
        let state_arg = flag(&argv, "--state").expect("--state in the args");
        let map_arg = flag(&argv, "--map-dir").expect("--map-dir in the args");
        let index_ref = format!("$({INDEX_VAR})");
        for (what, v) in [("--state", state_arg), ("--map-dir", map_arg)] {
            assert!(
                v.contains(&index_ref),
                "{f}: {what} {v} must hold {index_ref}"
            );
        }
        let state = mount_of(&mounts, state_arg)
            .unwrap_or_else(|| panic!("{f}: --state {state_arg} is on no volume"))
            .clone();
        assert!(
            state.claim.is_some(),
            "{f}: the state on a PersistentVolumeClaim (it must outlive the pods)"
        );
        assert!(
            !state.read_only && !state.claim_read_only,
            "{f}: the state volume is written"
        );
        let job = Self {
            shards,
            argv,
            image: str_of(&c["image"], "image").to_string(),
            media,
            state,
            secret: secrets.into_iter().next().unwrap(),
        };
        let mut dirs = BTreeSet::new();
        for i in 0..shards {
            let a = job.argv_of(i);
            assert!(
                !a.iter().any(|a| a.contains("$(")),
                "{f}: a $(...) left unexpanded: {a:?}"
            );
            for what in ["--state", "--map-dir"] {
                let d = flag(&a, what).unwrap().to_string();
                assert_eq!(
                    mount_of(std::slice::from_ref(&job.state), &d).map(|m| &m.path),
                    Some(&job.state.path),
                    "{f}: index {i}'s {what} {d} is not on the state volume"
                );
                assert!(
                    !Path::new(&d).starts_with(&job.media.path),
                    "{f}: {what} {d} in the media"
                );
                assert!(
                    dirs.insert(d.clone()),
                    "{f}: index {i}'s {what} {d} is another index's, or its own other dir"
                );
            }
        }
        job
    }

    /// The command index `i`'s pod runs, after the kubelet's expansion.
    fn argv_of(&self, i: u64) -> Vec<String> {
        let env = BTreeMap::from([(INDEX_VAR.to_string(), i.to_string())]);
        self.argv.iter().map(|a| k8s_expand(a, &env)).collect()
    }

    fn map_dir(&self, i: u64) -> String {
        flag(&self.argv_of(i), "--map-dir").unwrap().to_string()
    }
}

/// merge-job.yaml: its inputs, its output, and its state mount.
struct MergeJob {
    argv: Vec<String>,
    inputs: Vec<String>,
    output: String,
}

impl MergeJob {
    fn load(migrate: &MigrateJob) -> Self {
        let f = "merge-job.yaml";
        let job = job(f);
        assert_eq!(
            job["metadata"]["name"], MERGE_JOB,
            "{f}: the README waits for job/{MERGE_JOB}"
        );
        assert!(
            matches!(
                job["spec"]["completionMode"].as_str(),
                None | Some("NonIndexed")
            ),
            "{f}: one pod, not an Indexed Job"
        );
        let c = container(&job, f);
        assert_eq!(
            c["image"],
            migrate.image.as_str(),
            "{f}: the migrate job's image"
        );
        let argv = argv(c, f);
        assert_eq!(
            argv.get(..3),
            Some(&["mediashift", "maps", "merge"].map(String::from)[..]),
            "{f}: the container runs `mediashift maps merge`: {argv:?}"
        );
        let o = argv
            .iter()
            .position(|a| a == "-o" || a == "--output")
            .unwrap_or_else(|| panic!("{f}: no -o MAP_DIR: {argv:?}"));
        assert_eq!(
            o + 2,
            argv.len(),
            "{f}: -o MAP_DIR last, after the shards' map dirs: {argv:?}"
        );
        let inputs = argv[3..o].to_vec();
        let output = argv[o + 1].clone();
        let want: Vec<String> = (0..migrate.shards).map(|i| migrate.map_dir(i)).collect();
        assert_eq!(
            inputs, want,
            "{f}: the inputs must be exactly the {} shards' --map-dir, in index order",
            migrate.shards
        );
        assert!(!inputs.contains(&output), "{f}: -o is one of the inputs");
        let mounts = mounts(&job, f);
        for d in inputs.iter().chain([&output]) {
            let m = mount_of(&mounts, d).unwrap_or_else(|| panic!("{f}: {d} is on no volume"));
            assert_eq!(
                (&m.path, &m.claim),
                (&migrate.state.path, &migrate.state.claim),
                "{f}: {d} must be on the migrate job's state claim, mounted at the same path"
            );
            assert!(!m.read_only, "{f}: the state volume is written (-o)");
        }
        Self {
            argv,
            inputs,
            output,
        }
    }
}

#[test]
fn the_migrate_job_runs_one_shard_per_index_with_its_own_state() {
    let m = MigrateJob::load();
    assert!(m.shards >= 2, "a split into {} shards", m.shards);
}

#[test]
fn the_merge_job_joins_exactly_the_shards_maps() {
    let m = MigrateJob::load();
    let merge = MergeJob::load(&m);
    assert_eq!(merge.inputs.len() as u64, m.shards);
}

/// deploy/kubernetes/README.md, and its `xargs -P` line and the merge line
/// after it, split into words (they hold no quotes).
fn readme_lines() -> (String, Vec<String>, Vec<String>) {
    let readme = std::fs::read_to_string(deploy_file("README.md")).unwrap();
    let words = |l: &str| -> Vec<String> {
        assert!(
            !l.contains(['\'', '"', '\\']),
            "keep the README's command lines free of quotes: {l}"
        );
        l.split_whitespace().map(str::to_string).collect()
    };
    let lines: Vec<&str> = readme.lines().collect();
    let at: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("xargs -P"))
        .collect();
    assert_eq!(
        at.len(),
        1,
        "deploy/kubernetes/README.md: one `xargs -P` line"
    );
    let xargs = words(lines[at[0]]);
    let merge = lines[at[0]..]
        .iter()
        .find(|l| l.trim_start().starts_with("mediashift maps merge"))
        .map(|l| words(l))
        .expect("a `mediashift maps merge` line after the xargs line");
    (readme, xargs, merge)
}

#[test]
fn the_readme_gives_the_manifests_names_and_the_same_split_without_kubernetes() {
    let m = MigrateJob::load();
    let merge_job = MergeJob::load(&m);
    let (readme, xargs, merge) = readme_lines();
    for want in [
        format!("kubectl create secret generic {}", m.secret),
        format!("kubectl wait --for=condition=complete job/{MIGRATE_JOB}"),
        format!("kubectl wait --for=condition=complete job/{MERGE_JOB}"),
        "kubectl apply -f migrate-job.yaml".to_string(),
        "kubectl apply -f merge-job.yaml".to_string(),
        merge_job.output.clone(),
    ]
    .into_iter()
    .chain(SECRET_KEYS.map(|k| format!("--from-literal={k}=")))
    {
        assert!(
            readme.contains(&want),
            "deploy/kubernetes/README.md does not say `{want}`"
        );
    }
    let top = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    assert!(
        top.contains("(deploy/kubernetes/README.md)"),
        "README.md links to deploy/kubernetes/README.md"
    );

    // seq 0 N-1 | xargs -P N -I{} mediashift migrate SOURCE DEST FLAGS
    let n = m.shards;
    let (last, procs) = ((n - 1).to_string(), n.to_string());
    let head = [
        "seq",
        "0",
        &last,
        "|",
        "xargs",
        "-P",
        &procs,
        "-I{}",
        "mediashift",
        "migrate",
    ];
    assert_eq!(
        xargs.get(..head.len()),
        Some(&head.map(String::from)[..]),
        "the README's xargs line runs {n} shards: {xargs:?}"
    );
    let run = &xargs[head.len() - 2..];
    assert_eq!(
        flag(run, "--shard"),
        Some(format!("{{}}/{n}").as_str()),
        "--shard {{}}/{n}"
    );
    let (state, maps) = (
        flag(run, "--state").unwrap(),
        flag(run, "--map-dir").unwrap(),
    );
    assert!(
        state.contains("{}") && maps.contains("{}"),
        "--state and --map-dir per shard: {run:?}"
    );
    let mut ours = flag_names(run);
    let mut theirs = flag_names(&m.argv);
    ours.remove("--shard");
    theirs.remove("--shards");
    assert_eq!(
        ours, theirs,
        "the README's xargs line and the migrate job take the same flags"
    );

    // mediashift maps merge maps-0 .. maps-(N-1) -o DIR
    let dirs: Vec<String> = (0..n).map(|i| maps.replace("{}", &i.to_string())).collect();
    let mut want: Vec<String> = ["mediashift", "maps", "merge"].map(String::from).to_vec();
    want.extend(dirs);
    assert_eq!(
        merge.get(..want.len()),
        Some(&want[..]),
        "the README's merge line lists every shard's maps"
    );
    assert_eq!(merge.len(), want.len() + 2, "then -o DIR: {merge:?}");
    assert_eq!(merge[want.len()], "-o");
}

/// The files of a small tree (with duplicates) by path.
fn media() -> (Tree, BTreeSet<String>) {
    let tree = Tree::new();
    let mut paths = BTreeSet::new();
    for i in 0..24u64 {
        let p = format!("catalog/product/{}/{i}.jpg", i % 3);
        tree.file(&p, &bytes(i, 100 + 37 * i as usize));
        paths.insert(p);
    }
    tree.file("wysiwyg/copy-of-5.jpg", &bytes(5, 100 + 37 * 5));
    paths.insert("wysiwyg/copy-of-5.jpg".into());
    (tree, paths)
}

/// The paths a merged map.json holds, checked to be one of one migration.
fn merged_paths(map_dir: &Path) -> BTreeSet<String> {
    let m: Value =
        serde_json::from_slice(&std::fs::read(map_dir.join("map.json")).unwrap()).unwrap();
    assert!(
        m["shard"].is_null(),
        "merged maps are of no one shard: {}",
        m["shard"]
    );
    m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// `arg` with the pod's mount paths replaced by the directories standing in
/// for them here.
fn local(arg: &str, mounts: &[(&str, &Path)]) -> String {
    for (mount, dir) in mounts {
        if let Ok(rest) = Path::new(arg).strip_prefix(mount) {
            return dir.join(rest).display().to_string();
        }
    }
    arg.to_string()
}

#[test]
fn the_jobs_commands_migrate_every_shard_and_merge_their_maps() {
    let m = MigrateJob::load();
    let merge = MergeJob::load(&m);
    let (tree, paths) = media();
    let t = target("deploy-k8s");
    let state = tempfile::Builder::new()
        .prefix("mediashift-k8s-state-")
        .tempdir()
        .unwrap();
    let mounts = [
        (m.media.path.as_str(), tree.path()),
        (m.state.path.as_str(), state.path()),
    ];
    for i in 0..m.shards {
        // As index i's pod: its args expanded, JOB_COMPLETION_INDEX set.
        let mut argv: Vec<String> = m.argv_of(i)[1..]
            .iter()
            .map(|a| local(a, &mounts))
            .collect();
        argv[2] = t.url();
        let out = mediashift_env(&argv, &[(INDEX_VAR, &i.to_string())]);
        check(&out, &format!("index {i}: mediashift {argv:?}"));
    }
    let argv: Vec<String> = merge.argv[1..].iter().map(|a| local(a, &mounts)).collect();
    check(
        &mediashift_env(&argv, &[]),
        &format!("the merge job: mediashift {argv:?}"),
    );
    let out = Path::new(&local(&merge.output, &mounts)).to_path_buf();
    assert_eq!(
        merged_paths(&out),
        paths,
        "the merged maps hold every file once"
    );
    // 25 files, an object each (the duplicate's copied in the bucket).
    assert_eq!(t.objects().len(), paths.len(), "an object per file");
}

#[test]
fn the_readme_xargs_line_runs_as_written() {
    let (_, xargs, merge) = readme_lines();
    let (tree, paths) = media();
    let t = target("deploy-xargs");
    let work = tempfile::Builder::new()
        .prefix("mediashift-xargs-")
        .tempdir()
        .unwrap();
    // SOURCE_DIR and the destination are the words after `migrate`.
    let at = xargs.iter().position(|w| w == "migrate").unwrap();
    let mut line = xargs.clone();
    line[at + 1] = tree.path().display().to_string();
    line[at + 2] = t.url();
    let bin = Path::new(env!("CARGO_BIN_EXE_mediashift"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let s = server();
    let sh = |line: &str| {
        Command::new("sh")
            .args(["-c", line])
            .current_dir(work.path())
            .env("PATH", &path)
            .env("AWS_ENDPOINT_URL", &s.endpoint)
            .env("AWS_ACCESS_KEY_ID", &s.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &s.secret_key)
            .env("AWS_REGION", &s.region)
            .env_remove("AWS_PROFILE")
            .env_remove("RUST_LOG")
            .env_remove(INDEX_VAR)
            .output()
            .unwrap()
    };
    check(&sh(&line.join(" ")), &line.join(" "));
    check(&sh(&merge.join(" ")), &merge.join(" "));
    let o = merge.iter().position(|w| w == "-o").unwrap();
    assert_eq!(merged_paths(&work.path().join(&merge[o + 1])), paths);
    assert_eq!(t.objects().len(), paths.len());
}
