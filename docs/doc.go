// Package docs holds the project's documentation, which is markdown; its
// only Go is the test that keeps the docs true to the repository: every
// relative link in README.md and docs/ resolves, operators.md documents
// every app.toml key and metric the module has, and the Grafana dashboard
// queries only those metrics. `make docs-check` runs it.
package docs
