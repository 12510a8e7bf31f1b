//! `wasmjob run` end to end: the docs' pi Jobs, status as Kubernetes reports it, errors.

use crate::support::*;

#[test]
fn pi_example_prints_2000_correct_digits_and_completes() {
    let out = wasmjob(examples(), &["run", "pi.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("3.14159"))
        .expect("digits in the log");
    assert!(line.starts_with("[pod/pi-"), "{line}");
    let digits = line.split("] ").nth(1).unwrap();
    assert_eq!(digits.len(), 2 + 2000);
    assert!(digits.starts_with("3.14159265358979323846264338327950288419716939937510"));
    assert_eq!(&digits[2 + 761..2 + 767], "999999", "the Feynman point");
    assert!(digits.ends_with("5778185778053217122680661300192787661119590921642019893809525720106548586327886593615338182796823030195203530185296899577362259941389124972177528347913151557485724245415069595082953311686172785588907509838175463746493931925506040092770167113900984882401285836160356370766010471018194295559619894676783744944825537977472684710404753464620804668425906949129331367702898915210475216205696602405803815019351125338243003558764024749647326391419927260426992279678235478163600934172164121992458631503028618297455570674983850549458858692699569092721079750930295532116534498720275596023648066549911988183479775356636980742654252786255181841757467289097777279380008164706001614524919217321721477235014144197356854816136115735255213347574184946843852332390739414333454776241686251898356948556209921922218427255025425688767179049460165346680498862723279178608578438382796797668145410095388378636095068006422512520511739298489608412848862694560424196528502221066118630674427862203919494504712371378696095636437191728746776465757396241389086583264599581339047802759009"));
    let table: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("pi ") || l.starts_with("NAME"))
        .collect();
    assert_eq!(
        table[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
    assert_eq!(
        table[1].split_whitespace().take(3).collect::<Vec<_>>(),
        ["pi", "Complete", "1/1"]
    );
    assert!(out.stdout.contains("Completed"), "{}", out.stdout);
    assert!(
        out.stderr.contains("job.batch/pi created"),
        "{}",
        out.stderr
    );
}

#[test]
fn parallel_pi_never_exceeds_parallelism_and_reports_kubernetes_objects() {
    let out = wasmjob(examples(), &["run", "pi-parallel.yaml", "-o", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    assert_eq!(list["kind"], "List");
    let jobs = items(&list, "Job");
    let job = jobs[0];
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["spec"]["completions"], 4);
    assert_eq!(job["spec"]["parallelism"], 2);
    assert_eq!(job["spec"]["backoffLimit"], 4);
    assert_eq!(job["spec"]["completionMode"], "NonIndexed");
    let uid = job["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    assert_eq!(
        conditions(job),
        [
            ("SuccessCriteriaMet".into(), "CompletionsReached".into()),
            ("Complete".into(), "CompletionsReached".into())
        ]
    );
    let status = &job["status"];
    assert_eq!(
        (
            status["succeeded"].as_i64(),
            status["failed"].as_i64(),
            status["active"].as_i64()
        ),
        (Some(4), Some(0), Some(0))
    );
    assert!(ts(&status["completionTime"]) >= ts(&status["startTime"]));
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 4);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("pi-parallel-") && name.len() == "pi-parallel-".len() + 5,
            "{name}"
        );
        assert_eq!(p["status"]["phase"], "Succeeded");
        assert_eq!(p["metadata"]["labels"]["job-name"], "pi-parallel");
        assert_eq!(p["metadata"]["labels"]["controller-uid"], uid);
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "pi-parallel"
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], uid);
        assert_eq!(terminated(p)["exitCode"], 0);
        assert_eq!(terminated(p)["reason"], "Completed");
        assert!(
            p["status"]["containerStatuses"][0]["imageID"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
    assert!(max_concurrent(&pods) <= 2);
}

#[test]
fn invalid_manifests_exit_2_with_every_field_error_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = testbed_job(
        "Bad_Name",
        "parallelism: -1\nbackoffLimit: -2",
        "restartPolicy: Always",
        "",
        &["exit", "0"],
    );
    let path = write(dir.path(), "bad.yaml", &bad);
    let out = wasmjob(dir.path(), &["run", &path]);
    assert_eq!(out.code, 2);
    for want in [
        "metadata.name: Invalid value: \"Bad_Name\"",
        "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
        "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in:\n{}",
            out.stderr
        );
    }
    assert!(
        !out.stderr.contains("created"),
        "nothing may start: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_missing_or_invalid_module_is_rejected_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let good = testbed_job("good", "", "restartPolicy: Never", "", &["exit", "0"]);
    let missing = testbed_job("missing", "", "restartPolicy: Never", "", &["exit", "0"])
        .replace(guest("testbed").to_str().unwrap(), "nope.wasm");
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm").unwrap();
    let junk = testbed_job("junk", "", "restartPolicy: Never", "", &[])
        .replace(guest("testbed").to_str().unwrap(), "junk.wasm");
    let path = write(
        dir.path(),
        "jobs.yaml",
        &format!("{good}---\n{missing}---\n{junk}"),
    );
    let out = wasmjob(dir.path(), &["run", &path]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("spec.template.spec.containers[0].image: Invalid value: \"nope.wasm\": cannot read module"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("\"junk.wasm\": not a valid WebAssembly module"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("job.batch/good created"),
        "{}",
        out.stderr
    );
}

#[test]
fn unsupported_fields_are_named_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "x",
        "paralellism: 2",
        "nodeSelector: {disk: ssd}",
        "ports: [{containerPort: 80}]",
        &[],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 2);
    for want in [
        "spec.paralellism: Forbidden",
        "spec.template.spec.nodeSelector: Forbidden",
        "spec.template.spec.containers[0].ports: Forbidden",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn backoff_limit_with_restart_policy_never_creates_new_pods_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "flaky",
        "backoffLimit: 2",
        "restartPolicy: Never",
        "",
        &["stderr", "boom", "exit", "3"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let list = out.json();
    let job = items(&list, "Job")[0];
    assert_eq!(
        conditions(job),
        [
            ("FailureTarget".into(), "BackoffLimitExceeded".into()),
            ("Failed".into(), "BackoffLimitExceeded".into())
        ]
    );
    assert_eq!(
        job["status"]["conditions"][1]["message"],
        "Job has reached the specified backoff limit"
    );
    assert_eq!(job["status"]["failed"], 3);
    assert_eq!(job["status"]["succeeded"], 0);
    assert!(job["status"].get("completionTime").is_none());
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 3, "backoffLimit 2 → 3 failed pods");
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(terminated(p)["exitCode"], 3);
        assert_eq!(terminated(p)["reason"], "Error");
        assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    }
    // Replacements start only after the previous pod failed, and after the back-off.
    for w in pods.windows(2) {
        assert!(ts(&w[1]["metadata"]["creationTimestamp"]) >= ts(&terminated(w[0])["finishedAt"]));
    }
}

#[test]
fn on_failure_restarts_in_place_and_counts_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let pod = format!(
        "restartPolicy: OnFailure\nvolumes:\n- name: state\n  hostPath: {{path: {}}}",
        state.display()
    );
    let job = testbed_job(
        "retry",
        "backoffLimit: 4",
        &pod,
        "volumeMounts: [{name: state, mountPath: /state}]",
        &["fail-until", "/state/n", "2", "echo", "done"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 1, "OnFailure keeps one pod");
    let cs = &pods[0]["status"]["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 2);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(terminated(pods[0])["reason"], "Completed");
    assert_eq!(
        std::fs::read_to_string(state.join("n")).unwrap().trim(),
        "3"
    );
    let job = items(&list, "Job")[0];
    assert_eq!(
        (
            job["status"]["succeeded"].as_i64(),
            job["status"]["failed"].as_i64()
        ),
        (Some(1), Some(0))
    );
}

#[test]
fn on_failure_fails_the_job_when_restarts_reach_the_backoff_limit() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "crash",
        "backoffLimit: 3",
        "restartPolicy: OnFailure",
        "",
        &["exit", "1"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 1);
    let list = out.json();
    let job = items(&list, "Job")[0];
    assert_eq!(conditions(job).last().unwrap().1, "BackoffLimitExceeded");
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["status"]["containerStatuses"][0]["restartCount"], 3);
    assert_eq!(job["status"]["failed"], 1);
}

#[test]
fn active_deadline_terminates_pods_and_wins_over_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "slow",
        "activeDeadlineSeconds: 1\nbackoffLimit: 6\nparallelism: 2\ncompletions: 4",
        "restartPolicy: Never",
        "",
        &["spin"],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 1);
    let list = out.json();
    let job = items(&list, "Job")[0];
    assert_eq!(
        conditions(job),
        [
            ("FailureTarget".into(), "DeadlineExceeded".into()),
            ("Failed".into(), "DeadlineExceeded".into())
        ]
    );
    assert_eq!(
        job["status"]["conditions"][1]["message"],
        "Job was active longer than specified deadline"
    );
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 2);
    assert_eq!(job["status"]["failed"], 2);
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(p["status"]["reason"], "DeadlineExceeded");
        assert_eq!(terminated(p)["reason"], "DeadlineExceeded");
        // Stopped promptly: well within a second of the deadline.
        let ran = ts(&terminated(p)["finishedAt"]).duration_since(ts(&job["status"]["startTime"]));
        assert!(
            ran.as_secs_f64() < 1.9,
            "spinning pod stopped after {ran:?}"
        );
    }
}

#[test]
fn work_queue_job_completes_when_all_pods_ended_after_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "wq",
        "parallelism: 3",
        "restartPolicy: Never",
        "",
        &["sleep", "20", "exit", "0"],
    );
    let path = write(dir.path(), "wq.yaml", &job);
    let out = wasmjob(dir.path(), &["run", &path, "-q"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row = out.stdout.lines().find(|l| l.starts_with("wq ")).unwrap();
    assert!(
        row.contains("Complete") && row.contains("3/1 of 3"),
        "{row}"
    );
}

#[test]
fn parallelism_zero_starts_nothing_and_reports_the_job_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "paused",
        "parallelism: 0\ncompletions: 2",
        "restartPolicy: Never",
        "",
        &[],
    );
    let out = run_json(dir.path(), &job, &[]);
    assert_eq!(out.code, 1);
    let list = out.json();
    assert!(items(&list, "Pod").is_empty());
    assert!(conditions(items(&list, "Job")[0]).is_empty());
}

#[test]
fn runs_every_job_of_a_directory_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir(&jobs).unwrap();
    for item in ["apple", "banana", "cherry"] {
        write(
            &jobs,
            &format!("job-{item}.yaml"),
            &testbed_job(
                &format!("process-item-{item}"),
                "",
                "restartPolicy: Never",
                "",
                &["echo", item],
            ),
        );
    }
    std::fs::write(jobs.join("README.txt"), "not a manifest").unwrap();
    let out = wasmjob(dir.path(), &["run", "jobs", "-o", "name"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        &lines[..3],
        [
            "job.batch/process-item-apple",
            "job.batch/process-item-banana",
            "job.batch/process-item-cherry"
        ]
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("pod/process-item-"))
            .count(),
        3
    );
}

#[test]
fn yaml_output_is_a_kubernetes_list() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job("y", "", "restartPolicy: Never", "", &["echo", "hi"]);
    let path = write(dir.path(), "y.yaml", &job);
    let out = wasmjob(dir.path(), &["run", &path, "-o", "yaml", "-q"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: serde_json::Value = serde_yaml_ng::from_str(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(items(&list, "Job")[0]["status"]["succeeded"], 1);
}

#[test]
fn bench_measures_jobs_beside_the_raw_loop() {
    let dir = tempfile::tempdir().unwrap();
    let out = wasmjob(
        dir.path(),
        &["bench", "-n", "40", "-p", "1,cores", "--with-state"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("built-in trivial module, 40 pods per run"),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].starts_with("PARALLELISM  RAW PODS/S  JOB PODS/S  JOB/RAW  BY CPU  STATE PODS/S"),
        "{}",
        out.stdout
    );
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    for row in &lines[2..] {
        let cells: Vec<&str> = row.split_whitespace().collect();
        let ratio: f64 = cells[3].parse().unwrap();
        assert!(ratio > 0.0, "{row}");
        let by_cpu: f64 = cells[4].parse().unwrap();
        assert!(by_cpu > 0.0, "{row}");
        assert!(cells[5].parse::<f64>().unwrap() > 0.0, "with state: {row}");
    }
    // A module that fails is reported, not measured as a success.
    let out = wasmjob(
        dir.path(),
        &[
            "bench",
            "-n",
            "5",
            "-p",
            "1",
            "--module",
            guest("testbed").to_str().unwrap(),
            "--",
            "exit",
            "3",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("did not exit 0"), "{}", out.stderr);
}

/// More pods than instance slots wait for one: none fails for want of a slot.
#[test]
fn pods_beyond_the_instance_pool_wait_for_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let job = testbed_job(
        "pool",
        "completions: 6\nparallelism: 6",
        "restartPolicy: Never",
        "",
        &["sleep", "100"],
    );
    let out = run_json(dir.path(), &job, &["--pool", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    assert_eq!(items(&list, "Job")[0]["status"]["succeeded"], 6);
}

/// The second run of a module loads it compiled from the cache; an entry that was corrupted
/// is noticed, compiled again and rewritten, and the run is none the worse.
#[test]
fn compiled_modules_are_cached_and_corrupted_entries_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "pi.yaml", "--ephemeral", "-o", "name"];
        args.extend_from_slice(extra);
        let out = wasmjob(examples(), &args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out
    };
    let entries = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    run(&["--no-cache"]);
    assert!(entries().is_empty(), "--no-cache writes nothing");
    run(&["--cache-dir", cache_arg]);
    let written = entries();
    assert_eq!(written.len(), 1, "one entry for pi.wasm: {written:?}");
    assert!(written[0].to_str().unwrap().ends_with(".cwasm"));
    let good = std::fs::read(&written[0]).unwrap();
    // A loaded entry is left as it is.
    run(&["--cache-dir", cache_arg]);
    assert_eq!(std::fs::read(&written[0]).unwrap(), good);
    // Flip one byte of the compiled code: the checksum catches it before wasmtime sees it.
    let mut bad = good.clone();
    let at = bad.len() - 100;
    bad[at] ^= 0xff;
    std::fs::write(&written[0], &bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmjob"))
        .args([
            "run",
            "pi.yaml",
            "--ephemeral",
            "-o",
            "name",
            "--cache-dir",
            cache_arg,
        ])
        .current_dir(examples())
        .env("WASMJOB_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("job.batch/pi"));
    assert!(
        stderr.contains("corrupted compiled-module cache entry (checksum mismatch)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&written[0]).unwrap(), good, "rewritten");
    // A truncated entry is rebuilt too.
    std::fs::write(&written[0], &good[..good.len() / 3]).unwrap();
    run(&["--cache-dir", cache_arg]);
    assert_eq!(std::fs::read(&written[0]).unwrap(), good);
}

/// The `sleep` guest (the image of `benches/sleepers.yaml`) waits for the sum of its
/// operands, as coreutils' `sleep` does, `infinity` until it is stopped, and fails a bad
/// command line with exit code 1 and coreutils' wording (it takes no options: `-1` is an
/// invalid interval).
#[test]
fn the_sleep_guest_waits_and_rejects_what_coreutils_sleep_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let job = |args: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: nap}}\nspec:\n  backoffLimit: 0\n  \
             template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, \
             image: {}, args: {args}}}]\n",
            guest("sleep").display()
        )
    };
    let out = run_json(
        dir.path(),
        &job(r#"["0.01", ".01s", "0.0001m"]"#),
        &["--logs"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list = out.json();
    let pod = items(&list, "Pod")[0];
    assert_eq!(terminated(pod)["reason"], "Completed");
    assert_eq!(terminated(pod)["exitCode"], 0);
    // `infinity` neither traps nor fails: the pod sleeps until its deadline stops it.
    let forever = job(r#"["infinity"]"#).replace(
        "backoffLimit: 0",
        "backoffLimit: 0\n  activeDeadlineSeconds: 1",
    );
    let out = run_json(dir.path(), &forever, &["--logs"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let list = out.json();
    let pod = items(&list, "Pod")[0];
    assert_eq!(terminated(pod)["reason"], "DeadlineExceeded", "{pod}");
    for (args, message) in [
        ("[]", "sleep: missing operand"),
        (r#"["1", "soon"]"#, "sleep: invalid time interval 'soon'"),
        (r#"["-1"]"#, "sleep: invalid time interval '-1'"),
    ] {
        let out = run_json(dir.path(), &job(args), &["--logs"]);
        assert_eq!(out.code, 1, "{args}: {}", out.stderr);
        let list = out.json();
        let pod = items(&list, "Pod")[0];
        assert_eq!(terminated(pod)["reason"], "Error", "{args}");
        assert_eq!(terminated(pod)["exitCode"], 1, "{args}");
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(
            out.stderr.contains(&format!("[pod/{name}/c] {message}\n")),
            "{args}: {}",
            out.stderr
        );
    }
}

/// The `sleep` guest keeps what makes 10,000 sleeping pods cheap (see guests/sleep): its
/// module has no data section (no memory image to map into each pool slot) and no table.
#[test]
fn the_sleep_guest_has_no_data_and_no_table() {
    let wasm = std::fs::read(guest("sleep")).unwrap();
    assert_eq!(&wasm[..8], b"\0asm\x01\0\0\0");
    let leb = |at: &mut usize| {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = wasm[*at];
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return value;
            }
        }
    };
    let (mut at, mut sections) = (8, Vec::new());
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let len = leb(&mut at);
        sections.push(id);
        at += len;
    }
    assert!(sections.contains(&10), "a code section: {sections:?}");
    // 4: table, 11: data, 12: data count.
    for id in [4, 11, 12] {
        assert!(!sections.contains(&id), "section {id} in {sections:?}");
    }
}

/// Pods that cannot be instantiated for want of the host's memory (here a `ulimit -v` that
/// leaves room for one or two instances on demand; in the wild Linux's limit on mappings,
/// which 10,000 sleeping pods on demand exceeded) wait Pending for running pods to end,
/// instead of failing with "Cannot allocate memory" as they did.
#[test]
fn pods_wait_for_memory_the_host_lacks_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let manifest = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: tight}}\nspec:\n  completions: 4\n  \
         parallelism: 4\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      \
         containers: [{{name: c, image: {}, args: [\"0.05\"]}}]\n",
        guest("sleep").display()
    );
    let path = write(dir.path(), "job.yaml", &manifest);
    // Each instance on demand reserves over 4 GiB of address space.
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 10000000 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_wasmjob"))
        .args(["run", &path, "--pool", "0", "-q", "-o", "json"])
        .env("WASMJOB_STATE_DIR", state.path())
        .env("WASMJOB_CACHE_DIR", module_cache())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = items(&list, "Pod");
    assert_eq!(pods.len(), 4, "no pod failed and was replaced");
    for pod in pods {
        assert_eq!(terminated(pod)["reason"], "Completed", "{pod}");
    }
}

/// One run of two Jobs: a pod's task is handed the next pod of either Job, and each pod
/// still runs its own Job's container (its arguments), never the other's.
#[test]
fn pods_of_two_jobs_in_one_run_each_run_their_own_container() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "completions: 30\nparallelism: 1";
    let manifest = format!(
        "{}---\n{}",
        testbed_job("ja", spec, "restartPolicy: Never", "", &["echo", "from-ja"]),
        testbed_job("jb", spec, "restartPolicy: Never", "", &["echo", "from-jb"]),
    );
    let out = run_json(dir.path(), &manifest, &["--logs"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut lines = 0;
    for line in out.stderr.lines().filter(|l| l.starts_with("[pod/")) {
        // `[pod/ja-bcdfg/tb] from-ja`: the Job's name begins the pod's.
        let job = &line["[pod/".len().."[pod/ja".len()];
        assert!(line.ends_with(&format!("] from-{job}")), "{line}");
        lines += 1;
    }
    assert_eq!(lines, 60, "{}", out.stderr);
    let list = out.json();
    assert_eq!(items(&list, "Pod").len(), 60);
}
