package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestFsckPartialDownloads: issue 11, item 6. fsck lists partial downloads
// with their size and age, in text and JSON, as information: the store is
// not damaged by them.
func TestFsckPartialDownloads(t *testing.T) {
	c := newCLI(t)
	data, dgst := blob(t, 3<<20)
	r := c.runIn(bytes.NewReader(data[:1<<20]), "content", "ingest", "layer-1", "--expected-digest", dgst, "--expected-size", "3145728")
	if r.code != 1 {
		t.Fatalf("short ingest = %+v", r)
	}

	out := c.ok("fsck")
	want := "note     partial-download  default/layer-1: 1.0 MiB of 3.0 MiB, started "
	if !strings.Contains(out, want) || !strings.Contains(out, "`strata -n default content abort layer-1` drops it") || !strings.HasSuffix(out, ": ok\n") {
		t.Fatalf("fsck with a partial download = %q, want a line with %q", out, want)
	}

	var rep struct {
		Damaged bool `json:"damaged"`
		Ingests []struct {
			Namespace  string `json:"namespace"`
			Ref        string `json:"ref"`
			Expected   string `json:"expected"`
			Size       int64  `json:"size"`
			Total      int64  `json:"total"`
			StartedAt  string `json:"started_at"`
			AgeSeconds *int64 `json:"age_seconds"`
		} `json:"ingests"`
	}
	if err := json.Unmarshal([]byte(c.ok("fsck", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Damaged || len(rep.Ingests) != 1 {
		t.Fatalf("fsck -o json: %+v", rep)
	}
	in := rep.Ingests[0]
	if in.Namespace != "default" || in.Ref != "layer-1" || in.Expected != dgst || in.Size != 1<<20 || in.Total != 3<<20 ||
		in.StartedAt == "" || in.AgeSeconds == nil || *in.AgeSeconds < 0 {
		t.Fatalf("fsck -o json lists the partial download as %+v", in)
	}

	c.ok("content", "abort", "layer-1")
	if out := c.ok("fsck"); strings.Contains(out, "partial-download") {
		t.Fatalf("fsck after the abort = %q", out)
	}
}
