//! Compile-time errors of `#[durable]`: one mistake per file in `tests/ui/`, each with the
//! error rustc prints (`TRYBUILD=overwrite cargo test --test compile_fail` regenerates the
//! `.stderr` files; read the diff, never hand-edit them).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
