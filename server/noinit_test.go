package server_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoInitRegistration (issue 13): New lists every service it serves,
// so "who serves X" is one grep. A service that adds itself from an init
// function again (in server/ or a services/<name>/ package) fails here.
func TestNoInitRegistration(t *testing.T) {
	fset := token.NewFileSet()
	parsed := 0
	for _, root := range []string{".", "../services"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			parsed++
			for _, decl := range f.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" {
					t.Errorf("%s: func init: register the service in server.New instead", fset.Position(fn.Pos()))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan %s: %v", root, err)
		}
	}
	// server/ and services/ hold some thirty files: a scan that found none
	// proves nothing.
	if parsed < 10 {
		t.Fatalf("scanned %d Go files in server/ and services/, want the packages' sources", parsed)
	}
}

// TestServicesImportNoServer (issue 13): each service is built over the
// small interfaces it declares, so none imports the daemon's wiring or
// the server that lists it (server/peercred, the socket's credentials, is
// theirs to use).
func TestServicesImportNoServer(t *testing.T) {
	fset := token.NewFileSet()
	parsed := 0
	err := filepath.WalkDir("../services", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		parsed++
		for _, imp := range f.Imports {
			switch p := strings.Trim(imp.Path.Value, `"`); p {
			case "github.com/strata-oci/strata/server", "github.com/strata-oci/strata/wiring":
				t.Errorf("%s imports %s: declare what the service needs and let server.New pass it", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan ../services: %v", err)
	}
	if parsed < 10 {
		t.Fatalf("scanned %d Go files in services/, want the packages' sources", parsed)
	}
}
