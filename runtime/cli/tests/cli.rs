//! The `capstan` binary, driven as a user would: a real `capstan serve`
//! process, then deploy (with an app config), run, env, and admin and
//! service keys against it.

mod common;

use std::process::Command;

use capstan_test_support::root;
use common::*;

#[test]
fn serve_deploy_run_env_and_keys_work_end_to_end() {
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = Running(
        capstan()
            .args(["serve", "--data-dir"])
            .arg(data.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("capstan serve starts"),
    );
    wait_for_health(port);

    let key = ok(capstan()
        .args(["keys", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("runs"));
    assert!(key.starts_with("capstan_admin_"));
    let with = |command: &mut Command| {
        command.args(["--url", &url, "--admin-key", &key]);
    };

    let mut deploy = capstan();
    deploy.args(["deploy", "--component"]).arg(test_guest());
    with(&mut deploy);
    assert!(ok(deploy.output().expect("runs")).starts_with("deployed "));

    let mut run = capstan();
    run.args([
        "run",
        "api:send",
        r#"{"channel": "cli", "body": "from the cli"}"#,
    ]);
    with(&mut run);
    let id = ok(run.output().expect("runs"));
    assert_eq!(id.trim_matches('"').len(), 36, "{id}");

    let mut run = capstan();
    run.args(["run", "api:list", r#"{"channel": "cli"}"#]);
    with(&mut run);
    assert!(ok(run.output().expect("runs")).contains("from the cli"));

    let mut set = capstan();
    set.args(["env", "set", "GREETING", "hello there"]);
    with(&mut set);
    ok(set.output().expect("runs"));
    let mut get = capstan();
    get.args(["env", "get", "GREETING"]);
    with(&mut get);
    assert_eq!(ok(get.output().expect("runs")), "hello there");
    let mut run = capstan();
    run.args(["run", "api:env", r#"{"name": "GREETING"}"#]);
    with(&mut run);
    assert_eq!(ok(run.output().expect("runs")), "\"hello there\"");
    let mut unset = capstan();
    unset.args(["env", "unset", "GREETING"]);
    with(&mut unset);
    ok(unset.output().expect("runs"));
    let mut list = capstan();
    list.args(["env", "list"]);
    with(&mut list);
    assert_eq!(ok(list.output().expect("runs")), "");

    // Failures: one line on stderr, non-zero exit.
    let mut run = capstan();
    run.args(["run", "api:fail", "{}"]);
    with(&mut run);
    assert!(fails(run.output().expect("runs")).contains("TOO_MANY"));
    let mut run = capstan();
    run.args(["run", "api:list", "not json"]);
    with(&mut run);
    assert!(fails(run.output().expect("runs")).contains("not valid JSON"));
    let mut bad_key = capstan();
    bad_key.args([
        "env",
        "list",
        "--url",
        &url,
        "--admin-key",
        "capstan_admin_wrong",
    ]);
    assert!(fails(bad_key.output().expect("runs")).contains("401"));
    let mut bad_deploy = capstan();
    bad_deploy
        .args(["deploy", "--component"])
        .arg(data.path().join("admin_key"));
    with(&mut bad_deploy);
    assert!(fails(bad_deploy.output().expect("runs")).contains("not a WebAssembly component"));

    // Service keys: the key is printed once, listed by name, then revoked.
    let mut create = capstan();
    create.args(["keys", "service", "create", "billing"]);
    with(&mut create);
    let service_key = ok(create.output().expect("runs"));
    assert!(service_key.starts_with("capstan_service_"), "{service_key}");
    let mut list = capstan();
    list.args(["keys", "service", "list"]);
    with(&mut list);
    let listed = ok(list.output().expect("runs"));
    assert!(listed.starts_with("billing\t"), "{listed}");
    assert!(!listed.contains(&service_key), "{listed}");
    let mut revoke = capstan();
    revoke.args(["keys", "service", "revoke", "billing"]);
    with(&mut revoke);
    ok(revoke.output().expect("runs"));
    let mut again = capstan();
    again.args(["keys", "service", "revoke", "billing"]);
    with(&mut again);
    assert!(fails(again.output().expect("runs")).contains("no service key"));

    // The app config beside the app is deployed with it, and checked.
    let app = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    std::fs::write(
        app.path().join("capstan.json"),
        r#"{"auth": {"providers": [{"domain": "https://id.example.com"}]}}"#,
    )
    .expect("write");
    let mut configured = capstan();
    configured
        .arg("deploy")
        .arg(app.path())
        .arg("--component")
        .arg(test_guest());
    with(&mut configured);
    assert!(fails(configured.output().expect("runs")).contains("applicationID"));
    std::fs::write(
        app.path().join("capstan.json"),
        r#"{"auth": {"providers": [{"domain": "https://id.example.com", "applicationID": "app"}]}}"#,
    )
    .expect("write");
    let mut configured = capstan();
    configured
        .arg("deploy")
        .arg(app.path())
        .arg("--component")
        .arg(test_guest());
    with(&mut configured);
    assert!(ok(configured.output().expect("runs")).starts_with("deployed "));

    // Deploying from source builds the app optimised.
    let release = root().join("target/wasm32-wasip2/release/test_guest.wasm");
    let _ = std::fs::remove_file(&release);
    let mut from_source = capstan();
    from_source.arg("deploy").arg(root().join("tests/guest"));
    with(&mut from_source);
    assert!(ok(from_source.output().expect("runs")).starts_with("deployed "));
    assert!(
        release.exists(),
        "no release build at {}",
        release.display()
    );
    let mut run = capstan();
    run.args(["run", "api:list", r#"{"channel": "cli"}"#]);
    with(&mut run);
    assert!(ok(run.output().expect("runs")).contains("from the cli"));
}

#[test]
fn new_creates_an_app_that_builds() {
    let parent = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let dir = parent.path().join("my-app");
    ok(capstan().arg("new").arg(&dir).output().expect("runs"));
    assert!(dir.join("src/lib.rs").exists() && dir.join("src/counter.rs").exists());
    // Calls start with room for their heap (see .cargo/config.toml).
    assert!(
        std::fs::read_to_string(dir.join(".cargo/config.toml"))
            .is_ok_and(|config| config.contains("--initial-memory=")),
        "the new app has no .cargo/config.toml"
    );
    fails(capstan().arg("new").arg(&dir).output().expect("runs"));

    let status = Command::new(env!("CARGO"))
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", root().join("target/new-app"))
        .args(["build", "--quiet", "--target", "wasm32-wasip2"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the new app builds");
    assert!(
        root()
            .join("target/new-app/wasm32-wasip2/debug/my_app.wasm")
            .exists()
    );
}

/// Signs in every way that handles a secret with `capstan serve` logging
/// at its most detailed, then reads the whole log: no password, code,
/// refresh token or private key may be in it.
#[test]
fn no_secret_of_sign_in_reaches_the_log() {
    let data = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let log = data.path().join("server.log");
    let mut server = Running(
        capstan()
            .args(["serve", "--data-dir"])
            .arg(data.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // Everything, but the compiler's own tracing of machine code.
            .env(
                "CAPSTAN_LOG",
                "trace,cranelift_codegen=warn,cranelift_frontend=warn,wasmtime_cranelift=warn,wasmtime=info,regalloc2=warn",
            )
            .stderr(std::fs::File::create(&log).expect("log file"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("capstan serve starts"),
    );
    wait_for_health(port);
    let key = ok(capstan()
        .args(["keys", "--data-dir"])
        .arg(data.path().join("data"))
        .output()
        .expect("runs"));
    let with = |command: &mut Command| {
        command.args(["--url", &url, "--admin-key", &key]);
    };
    let app = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    std::fs::write(
        app.path().join("capstan.json"),
        r#"{"auth": {"builtIn": {"providers": {
            "password": {"type": "password", "reset": {"type": "email"}},
            "email": {"type": "email"}
        }}}}"#,
    )
    .expect("write");
    let mut deploy = capstan();
    deploy
        .arg("deploy")
        .arg(app.path())
        .arg("--component")
        .arg(test_guest());
    with(&mut deploy);
    ok(deploy.output().expect("runs"));
    // No SMTP server: sending fails, after the code was made and stored.
    let run = |path: &str, args: &str| {
        let mut run = capstan();
        run.args(["run", path, args]);
        with(&mut run);
        run.output().expect("runs")
    };
    let password = "p4ssw0rd-that-must-not-leak";
    let signed_up = ok(run(
        "auth:signIn",
        &format!(
            r#"{{"provider": "password", "params": {{"flow": "signUp", "email": "s@example.com", "password": "{password}"}}}}"#
        ),
    ));
    let tokens: serde_json::Value = serde_json::from_str(&signed_up).expect("json");
    let refresh = tokens["tokens"]["refreshToken"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let access = tokens["tokens"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let _ = run(
        "auth:signIn",
        &format!(
            r#"{{"provider": "password", "params": {{"flow": "signIn", "email": "s@example.com", "password": "wrong-{password}"}}}}"#
        ),
    );
    let _ = run(
        "auth:signIn",
        &format!(r#"{{"refreshToken": "{refresh}"}}"#),
    );
    let _ = run(
        "auth:signIn",
        &format!(r#"{{"refreshToken": "{refresh}"}}"#),
    );
    let _ = run(
        "auth:signIn",
        r#"{"provider": "email", "params": {"email": "e@example.com"}}"#,
    );
    let _ = run(
        "auth:signIn",
        r#"{"provider": "email", "params": {"email": "e@example.com", "code": "12345678"}}"#,
    );
    let _ = run(
        "auth:signIn",
        &format!(
            r#"{{"provider": "password", "params": {{"flow": "reset-verification", "email": "s@example.com", "code": "87654321", "newPassword": "new-{password}"}}}}"#
        ),
    );
    drop(server.0.kill());
    let _ = server.0.wait();
    let text = String::from_utf8_lossy(&std::fs::read(&log).expect("log")).into_owned();
    assert!(
        text.contains("auth:signIn") || text.len() > 1000,
        "the log is detailed: {text}"
    );
    let keys = std::fs::read_to_string(data.path().join("data/auth_keys.json")).expect("keys");
    let keys: serde_json::Value = serde_json::from_str(&keys).expect("keys json");
    let private_key = keys["keys"][0]["privateKey"].as_str().expect("private key");
    let (_, secret) = refresh.split_once('|').expect("id|secret");
    let signature = access.rsplit('.').next().expect("signature");
    for (what, secret) in [
        ("the password", password),
        ("the refresh token's secret", secret),
        ("the access token", signature),
        ("the signing key", &private_key[40..80]),
        ("the admin key", key.as_str()),
        ("a code", "87654321"),
        ("a code", "12345678"),
    ] {
        assert!(!text.contains(secret), "{what} is in the log");
    }
}
