//! The files in `deploy/` stay valid: the compose file, HAProxy's
//! configuration, the Kubernetes manifests and the server configurations
//! they carry.

use std::path::PathBuf;

use capstan_server::ServerConfig;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(file: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn str_of<'a>(yaml: &'a Yaml, path: &[&str]) -> &'a str {
    let mut node = yaml;
    for key in path {
        node = &node[*key];
    }
    node.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

#[test]
fn the_kubernetes_manifests_parse_and_hold_what_a_cluster_needs() {
    let documents = yaml("kubernetes/capstan.yaml");
    let kinds: Vec<&str> = documents.iter().map(|d| str_of(d, &["kind"])).collect();
    for kind in [
        "Secret",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&kind), "a {kind} among {kinds:?}");
    }
    let find = |kind: &str| {
        documents
            .iter()
            .find(|d| str_of(d, &["kind"]) == kind)
            .expect("present")
    };
    // The ConfigMap's server configuration is one the server accepts, on
    // PostgreSQL, its URL from the Secret.
    let toml = str_of(find("ConfigMap"), &["data", "capstan.toml"]);
    let config = parse(toml);
    assert!(
        config
            .expect("capstan.toml in the ConfigMap")
            .postgres
            .is_some()
    );

    let deployment = find("Deployment");
    assert!(deployment["spec"]["replicas"].as_i64().unwrap_or(0) >= 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            str_of(container, &[probe, "httpGet", "path"]),
            "/health",
            "{probe}"
        );
    }
    let env: Vec<&str> = container["env"]
        .as_vec()
        .expect("env")
        .iter()
        .map(|e| str_of(e, &["name"]))
        .collect();
    for name in [
        "CAPSTAN_DATABASE_URL",
        "CAPSTAN_ADMIN_KEY",
        "CAPSTAN_AUTH_KEYS",
    ] {
        assert!(env.contains(&name), "{name} in {env:?}");
    }
    let secret = find("Secret");
    for key in ["database-url", "admin-key", "auth-keys"] {
        assert!(
            !secret["stringData"][key].is_badvalue(),
            "the Secret holds {key}"
        );
    }
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(&find("Service")["spec"]["selector"], selector);
    assert_eq!(
        &find("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        selector
    );
}

/// The configuration `toml` with `CAPSTAN_DATABASE_URL` set, as the
/// Secret sets it.
fn parse(toml: &str) -> Result<ServerConfig, String> {
    ServerConfig::from_toml_with_env(toml, |name| {
        (name == "CAPSTAN_DATABASE_URL").then(|| "postgres://capstan@db/capstan".to_owned())
    })
}

#[test]
fn the_compose_file_runs_postgresql_three_nodes_and_a_load_balancer() {
    let compose = &yaml("compose.yaml")[0];
    let services = compose["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for name in [
        "postgres",
        "capstan-1",
        "capstan-2",
        "capstan-3",
        "load-balancer",
    ] {
        assert!(names.contains(&name), "{name} among {names:?}");
    }
    // The nodes share one definition (a YAML merge key).
    let node = &compose["x-capstan-node"];
    assert!(str_of(node, &["environment", "CAPSTAN_DATABASE_URL"]).starts_with("postgres://"));
    assert_eq!(
        str_of(&compose["configs"]["capstan"], &["file"]),
        "./cluster.toml"
    );
    let config = parse(&deploy("cluster.toml"));
    assert!(config.expect("cluster.toml").postgres.is_some());
    // HAProxy checks /health, keeps upgraded sockets open, and knows the
    // three nodes.
    let haproxy = deploy("haproxy.cfg");
    assert!(haproxy.contains("option httpchk GET /health"));
    assert!(haproxy.contains("timeout tunnel"));
    for node in ["capstan-1:3210", "capstan-2:3210", "capstan-3:3210"] {
        assert!(haproxy.contains(node), "{node} in haproxy.cfg");
    }
}
