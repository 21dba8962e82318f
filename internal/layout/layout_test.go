package layout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/strata-oci/strata"

// pkg is what `go list -json` says of a package, the fields the tests read.
type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
}

// rel is p's path inside the module ("" for the root).
func rel(p string) string {
	return strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
}

// listPackages lists the module's packages (the test/ directories are
// modules of their own, outside ./...).
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Name,Doc,Imports", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./... in %s: %v\n%s", root, err, stderr.Bytes())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs[p.ImportPath] = &p
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list ./... found %d packages; is the test run inside the module?", len(pkgs))
	}
	return pkgs
}

// room returns the internal room p belongs to (the path up to and
// including "internal"), or "" when p is in none.
func room(p string) string {
	r := rel(p)
	if r == "internal" || strings.HasPrefix(r, "internal/") {
		return module + "/internal"
	}
	if i := strings.Index(r, "/internal/"); i >= 0 {
		return module + "/" + r[:i] + "/internal"
	}
	if strings.HasSuffix(r, "/internal") {
		return p
	}
	return ""
}

func inRoom(p, room string) bool { return p == room || strings.HasPrefix(p, room+"/") }

// dependsOn reports the chain of module imports by which from reaches a
// package of room, or nil.
func dependsOn(pkgs map[string]*pkg, from, room string) []string {
	seen := map[string]bool{}
	var walk func(p string) []string
	walk = func(p string) []string {
		if seen[p] {
			return nil
		}
		seen[p] = true
		if inRoom(p, room) {
			return []string{p}
		}
		info := pkgs[p]
		if info == nil {
			return nil
		}
		for _, imp := range info.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if chain := walk(imp); chain != nil {
				return append([]string{p}, chain...)
			}
		}
		return nil
	}
	return walk(from)
}

// floorViolations lists the imports of internal packages that run back up:
// to a module package outside the room that depends on the room.
func floorViolations(pkgs map[string]*pkg) []string {
	var bad []string
	for _, p := range pkgs {
		r := room(p.ImportPath)
		if r == "" {
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") || inRoom(imp, r) {
				continue
			}
			if chain := dependsOn(pkgs, imp, r); chain != nil {
				bad = append(bad, fmt.Sprintf("%s imports %s, which is above it: %s",
					rel(p.ImportPath), rel(imp), strings.Join(relAll(chain), " → ")))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func relAll(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = rel(p)
	}
	return out
}

// TestFloors: issue 13. internal/ held three floors at once (wiring at the
// top, boltutil at the bottom, testutil between), where all the imports
// that ran back up came from. No package of an internal room may import a
// package that depends on that room.
func TestFloors(t *testing.T) {
	for _, v := range floorViolations(listPackages(t)) {
		t.Error(v)
	}
}

// TestFloorsCatch runs the check over the layout before issue 13, so that
// TestFloors can fail: internal/wiring imported metadata, which imports
// internal/boltutil.
func TestFloorsCatch(t *testing.T) {
	pkgs := map[string]*pkg{}
	add := func(p string, imports ...string) {
		q := &pkg{ImportPath: module + "/" + p}
		for _, i := range imports {
			q.Imports = append(q.Imports, module+"/"+i)
		}
		pkgs[q.ImportPath] = q
	}
	add("internal/boltutil")
	add("internal/wiring", "metadata", "content/local")
	add("metadata", "internal/boltutil", "content")
	add("content")
	add("content/local", "content")
	add("archive/internal/imagetar", "content")
	got := floorViolations(pkgs)
	want := []string{"internal/wiring imports metadata, which is above it: metadata → internal/boltutil"}
	if !slices.Equal(got, want) {
		t.Errorf("floorViolations = %q, want %q", got, want)
	}
}

const wiring = module + "/wiring"

// wiringAllowed lists the packages that still import wiring outside cmd/*
// and tests, each with the change that removes the import. When the import
// is gone, remove the entry: the test fails on an entry that no longer
// holds.
var wiringAllowed = map[string]string{
	"server": "issue 13: server/ becomes services/<name>/ (r4)",
}

// testSupport reports whether p exists for tests: testutil/... and the
// packages named *test (conformance suites, servertest).
func testSupport(p string) bool {
	r := rel(p)
	return r == "testutil" || strings.HasPrefix(r, "testutil/") || strings.HasSuffix(r, "test")
}

// wiringViolations lists the packages that import wiring and may not, and
// the entries of allowed that no longer hold.
func wiringViolations(pkgs map[string]*pkg, allowed map[string]string) []string {
	var bad []string
	for _, p := range pkgs {
		r := rel(p.ImportPath)
		if !slices.Contains(p.Imports, wiring) {
			if why, ok := allowed[r]; ok {
				bad = append(bad, fmt.Sprintf("%s no longer imports wiring (%s): remove it from wiringAllowed", r, why))
			}
			continue
		}
		if strings.HasPrefix(r, "cmd/") || testSupport(p.ImportPath) {
			continue
		}
		if _, ok := allowed[r]; ok {
			continue
		}
		bad = append(bad, fmt.Sprintf("%s imports wiring: take the small interfaces it uses instead (only cmd/* and tests may import wiring)", r))
	}
	for r := range allowed {
		if pkgs[module+"/"+r] == nil {
			bad = append(bad, fmt.Sprintf("wiringAllowed names %s, which is no package: remove it", r))
		}
	}
	sort.Strings(bad)
	return bad
}

// TestWiringImporters: issue 13. wiring builds the whole object graph; a
// pipeline or a service that takes it cannot run over the daemon's client or
// a test double. Only the commands and tests may import it.
func TestWiringImporters(t *testing.T) {
	pkgs := listPackages(t)
	if pkgs[wiring] == nil {
		t.Fatalf("no package %s", rel(wiring))
	}
	for _, v := range wiringViolations(pkgs, wiringAllowed) {
		t.Error(v)
	}
}

// TestWiringImportersCatch runs the check over a made-up graph, so that
// TestWiringImporters can fail.
func TestWiringImportersCatch(t *testing.T) {
	pkgs := map[string]*pkg{}
	add := func(p string, imports ...string) {
		q := &pkg{ImportPath: module + "/" + p}
		for _, i := range imports {
			q.Imports = append(q.Imports, module+"/"+i)
		}
		pkgs[q.ImportPath] = q
	}
	add("wiring")
	add("cmd/strata", "wiring")
	add("testutil/storetest", "wiring")
	add("server/servertest", "wiring")
	add("pull", "wiring")
	add("push", "content")
	add("jobs", "wiring")
	got := wiringViolations(pkgs, map[string]string{"jobs": "r1", "push": "r1", "gone": "r4"})
	want := []string{
		"pull imports wiring: take the small interfaces it uses instead (only cmd/* and tests may import wiring)",
		"push no longer imports wiring (r1): remove it from wiringAllowed",
		"wiringAllowed names gone, which is no package: remove it",
	}
	if !slices.Equal(got, want) {
		t.Errorf("wiringViolations = %q, want %q", got, want)
	}
}

// tableRow is a row of the package table of docs/architecture.md.
type tableRow struct {
	line int
	text string
	pkg  string // the path in the first column; "" when it holds none
}

// readTable reads the table under "## Packages" in docs/architecture.md.
func readTable(t *testing.T) []tableRow {
	t.Helper()
	f, err := os.Open("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []tableRow
	in := false
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Packages"
		case in && strings.HasPrefix(line, "|"):
			cells := strings.Split(line, "|")
			if len(cells) < 3 {
				continue
			}
			first := strings.TrimSpace(cells[1])
			if first == "package" || strings.Trim(first, "-: ") == "" {
				continue // the header and its rule
			}
			row := tableRow{line: n, text: line}
			if len(first) > 2 && strings.HasPrefix(first, "`") && strings.HasSuffix(first, "`") && !strings.Contains(first[1:len(first)-1], "`") {
				row.pkg = first[1 : len(first)-1]
			}
			rows = append(rows, row)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("docs/architecture.md has no table under ## Packages")
	}
	return rows
}

// tableViolations lists the rows that name no package (or one named
// before) and the packages without a row, with the row to add.
func tableViolations(pkgs map[string]*pkg, rows []tableRow) []string {
	var bad []string
	inTable := map[string]int{}
	for _, r := range rows {
		switch {
		case r.pkg == "":
			bad = append(bad, fmt.Sprintf("docs/architecture.md:%d: the first cell must be one package path in backquotes: %s", r.line, r.text))
		case pkgs[module+"/"+r.pkg] == nil:
			bad = append(bad, fmt.Sprintf("docs/architecture.md:%d: no package %s: remove the row or rename it: %s", r.line, r.pkg, r.text))
		case inTable[r.pkg] != 0:
			bad = append(bad, fmt.Sprintf("docs/architecture.md:%d: %s has a row already (line %d): %s", r.line, r.pkg, inTable[r.pkg], r.text))
		default:
			inTable[r.pkg] = r.line
		}
	}
	var missing []string
	for p, info := range pkgs {
		if inTable[rel(p)] == 0 {
			missing = append(missing, "docs/architecture.md: package missing from the table; add:\n"+suggestRow(info))
		}
	}
	sort.Strings(missing)
	return append(bad, missing...)
}

// TestArchitectureTable: issue 13. docs/architecture.md describes the
// layout, every package in one row; this keeps it true.
func TestArchitectureTable(t *testing.T) {
	for _, v := range tableViolations(listPackages(t), readTable(t)) {
		t.Error(v)
	}
}

// TestArchitectureTableCatch runs the check over a made-up table, so that
// TestArchitectureTable can fail.
func TestArchitectureTableCatch(t *testing.T) {
	pkgs := map[string]*pkg{}
	for _, p := range []*pkg{
		{ImportPath: module + "/content", Name: "content", Doc: "Package content defines the blob store."},
		{ImportPath: module + "/unpack", Name: "unpack", Doc: "Package unpack applies layers: plan, apply, verify."},
	} {
		pkgs[p.ImportPath] = p
	}
	rows := []tableRow{
		{line: 5, text: "| `content` | blobs |", pkg: "content"},
		{line: 6, text: "| `server` | the gRPC API |", pkg: "server"},
		{line: 7, text: "| `a`, `b` | two |"},
	}
	got := tableViolations(pkgs, rows)
	want := []string{
		"docs/architecture.md:6: no package server: remove the row or rename it: | `server` | the gRPC API |",
		"docs/architecture.md:7: the first cell must be one package path in backquotes: | `a`, `b` | two |",
		"docs/architecture.md: package missing from the table; add:\n| `unpack` | applies layers: plan, apply, verify |",
	}
	if !slices.Equal(got, want) {
		t.Errorf("tableViolations = %q, want %q", got, want)
	}
}

// suggestRow is the line to add for p: its path and the first sentence of
// its package doc.
func suggestRow(p *pkg) string {
	what := strings.TrimSpace(p.Doc)
	for _, prefix := range []string{"Package " + p.Name + " ", "Command " + filepath.Base(p.ImportPath) + " "} {
		what = strings.TrimPrefix(what, prefix)
	}
	what = strings.TrimSuffix(strings.TrimSuffix(what, ":"), ".")
	if what == "" {
		what = "<what it holds>"
	}
	return fmt.Sprintf("| `%s` | %s |", rel(p.ImportPath), strings.ReplaceAll(what, "|", `\|`))
}
