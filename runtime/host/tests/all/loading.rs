use capstan_host::{Error, FunctionKind, Module, Origin, Visibility};

use crate::common::*;

#[test]
fn a_component_describes_its_functions_and_schema() {
    let fixture = guest();
    let functions = fixture.module.functions();
    assert_eq!(functions["api:list"].kind, FunctionKind::Query);
    assert_eq!(functions["api:send"].kind, FunctionKind::Mutation);
    assert_eq!(functions["api:send_and_list"].kind, FunctionKind::Action);
    assert_eq!(functions["api:secret"].visibility, Visibility::Internal);
    assert_eq!(functions["hostile:spin"].visibility, Visibility::Public);
    assert!(fixture.module.schema().tables.contains_key("messages"));
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let engine = engine();
    let bytes = component("counter", "counter");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, first) = Module::load(&engine, &bytes, Some(dir.path())).expect("loads");
    let (module, second) = Module::load(&engine, &bytes, Some(dir.path())).expect("loads again");
    assert_eq!((first, second), (Origin::Compiled, Origin::Cached));
    assert!(module.functions().contains_key("counter:increment"));

    // A fresh engine (as after a restart) loads the artifact too.
    let (_, after_restart) =
        Module::load(&super::common::engine(), &bytes, Some(dir.path())).expect("loads");
    assert_eq!(after_restart, Origin::Cached);
}

#[test]
fn files_that_are_not_components_are_refused() {
    let engine = engine();
    for bytes in [
        b"not wasm at all".to_vec(),
        b"\0asm\x01\0\0\0".to_vec(),
        Vec::new(),
    ] {
        let error = Module::load(&engine, &bytes, None).expect_err("refused");
        assert!(matches!(error, Error::NotAComponent(_)), "{error}");
    }
}

#[test]
fn a_corrupted_compiled_component_is_compiled_again_not_run() {
    let engine = engine();
    let bytes = component("counter", "counter");
    let dir = tempfile::tempdir().expect("temp dir");
    Module::load(&engine, &bytes, Some(dir.path())).expect("loads");
    let artifact = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_some_and(|e| e == "cwasm"))
        .expect("an artifact");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&artifact)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "compiled code is its owner's only");
    }
    let mut code = std::fs::read(&artifact).expect("read");
    let middle = code.len() / 2;
    code[middle] ^= 0x5a;
    std::fs::write(&artifact, &code).expect("write");

    let (module, origin) = Module::load(&engine, &bytes, Some(dir.path())).expect("loads");
    assert_eq!(
        origin,
        Origin::Compiled,
        "a corrupted artifact is not loaded"
    );
    assert!(module.functions().contains_key("counter:increment"));
    let (_, origin) = Module::load(&engine, &bytes, Some(dir.path())).expect("loads");
    assert_eq!(origin, Origin::Cached, "and is replaced by a sound one");
}
