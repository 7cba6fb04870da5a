//! The unmodified `convex` npm client (installed into `tests/conformance`
//! by `./tests/run`) against a real server: `node --test` runs the suite.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_convex_npm_client_works_against_capstan() -> anyhow::Result<()> {
    let suite = capstan_test_support::root().join("tests/conformance");
    anyhow::ensure!(
        suite.join("node_modules/convex/package.json").exists(),
        "the convex npm package is not installed: run `npm ci` in {} (./tests/run does)",
        suite.display()
    );
    let dir = temp_dir();
    let server = TestServer::with_guest(dir.path()).await?;
    let run = tokio::process::Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            "--test-timeout=60000",
            "conformance.test.mjs",
        ])
        .current_dir(&suite)
        .env("CAPSTAN_URL", server.server.url())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .map_err(|_| anyhow::anyhow!("the conformance suite did not finish in 3 minutes"))??;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    anyhow::ensure!(
        output.status.success(),
        "the conformance suite failed:\n{report}"
    );
    server.stop().await
}
