package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoInitRegistration (issue 13): newRootCommand lists every noun and
// verb, so "where is strata X Y" is one grep. A file that adds its verbs
// from an init function again fails here.
func TestNoInitRegistration(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	parsed := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		parsed++
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" {
				t.Errorf("%s: func init: list the command in newRootCommand (main.go) instead", fset.Position(fn.Pos()))
			}
		}
	}
	// cmd/strata has some twenty sources: a scan that found none proves
	// nothing.
	if parsed < 15 {
		t.Fatalf("scanned %d Go files in cmd/strata, want the package's sources", parsed)
	}
}
