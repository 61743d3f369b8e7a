//! Examples, tests and benchmarks of the durable workspace.
