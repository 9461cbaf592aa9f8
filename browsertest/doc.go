// Package browsertest drives the browser apps in real headless Chromium against the
// built opscenter binary: endpoints with fake cameras, the command console and the
// duty desk. It has only tests; run it alone: go test -p 1 ./browsertest/
package browsertest
