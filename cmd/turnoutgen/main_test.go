package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/opscenter/opscenter/store"
)

// TestTurnoutgenReproducesCommittedFile: the embedded file is this command's output,
// so a change to either shows up here.
func TestTurnoutgenReproducesCommittedFile(t *testing.T) {
	f, err := os.Open("../../configs/roster/22-2021-05-23.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := store.ParseRoster(f)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := write(&got, entries, 959021, 20210523); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../configs/turnout/22-2021-05-23.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("configs/turnout/22-2021-05-23.tsv differs from turnoutgen's output; run go run ./cmd/turnoutgen")
	}
}
