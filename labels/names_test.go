package labels

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// names is every constant of names.go; TestNamesListed keeps it complete.
var names = map[string]string{
	"GCRoot":                   GCRoot,
	"GCExpire":                 GCExpire,
	"GCRefContent":             GCRefContent,
	"GCRefContentPrefix":       GCRefContentPrefix,
	"GCRefConfig":              GCRefConfig,
	"GCRefLayerPrefix":         GCRefLayerPrefix,
	"GCRefManifestPrefix":      GCRefManifestPrefix,
	"GCRefSnapshotPrefix":      GCRefSnapshotPrefix,
	"Uncompressed":             Uncompressed,
	"DistributionSourcePrefix": DistributionSourcePrefix,
	"SnapshotRef":              SnapshotRef,
	"NamespaceShareable":       NamespaceShareable,
	"CRIManaged":               CRIManaged,
	"CRIManagedValue":          CRIManagedValue,
	"CRIPinned":                CRIPinned,
	"CRIPinnedValue":           CRIPinnedValue,
	"MountImage":               MountImage,
	"MountPlatform":            MountPlatform,
	"CreatedBy":                CreatedBy,
	"LeasePull":                LeasePull,
	"LeaseUnpack":              LeaseUnpack,
	"LeaseImport":              LeaseImport,
	"ContainerName":            ContainerName,
	"ContainerPorts":           ContainerPorts,
	"ContainerNetwork":         ContainerNetwork,
	"ContainerVolumes":         ContainerVolumes,
	"ContainerStopSignal":      ContainerStopSignal,
	"ContainerAutoRemove":      ContainerAutoRemove,
	"ContainerStartedAt":       ContainerStartedAt,
	"ContainerFinishedAt":      ContainerFinishedAt,
	"ContainerExitCode":        ContainerExitCode,
	"ContainerLogURI":          ContainerLogURI,
}

// labelValues are the constants that are values, not names: a string
// literal "managed" elsewhere is no label name.
var labelValues = []string{"CRIManagedValue", "CRIPinnedValue"}

// TestNamesListed fails when names.go declares a constant names does not
// list, so that TestNoLabelNameLiterals looks for it too.
func TestNamesListed(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "names.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
			for _, s := range g.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					declared = append(declared, n.Name)
					if _, ok := names[n.Name]; !ok {
						t.Errorf("names.go declares %s, which names (names_test.go) does not list", n.Name)
					}
				}
			}
		}
	}
	for n := range names {
		if !slices.Contains(declared, n) {
			t.Errorf("names lists %s, which names.go does not declare", n)
		}
	}
}

// TestNoLabelNameLiterals: issue 13. Label names were declared in eight
// files (containerd.io/uncompressed three times); now they are declared in
// names.go only, and the code elsewhere uses the constants. It fails on a
// string literal, in the non-test code of the module, that is one of the
// names or starts with one of their namespaces. Conformance suites
// (packages named *test, testutil) spell the names out on
// purpose: they pin what goes over the wire, which the constants cannot.
func TestNoLabelNameLiterals(t *testing.T) {
	exact := map[string]string{}
	for n, v := range names {
		if !slices.Contains(labelValues, n) {
			exact[v] = n
		}
	}
	prefixes := []string{"containerd.io/", "strata.io/", "io.cri-containerd."}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path == here || strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" ||
				strings.HasSuffix(name, "test") || name == "testutil" {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ImportSpec:
				return false
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(n.Value)
				if err != nil {
					return true
				}
				rel, _ := filepath.Rel(root, fset.Position(n.Pos()).Filename)
				pos := fset.Position(n.Pos())
				if c, ok := exact[s]; ok {
					t.Errorf("%s:%d: %s: use labels.%s", rel, pos.Line, n.Value, c)
					return true
				}
				for _, p := range prefixes {
					if strings.HasPrefix(s, p) {
						t.Errorf("%s:%d: %s names a label: declare it in labels/names.go and use the constant", rel, pos.Line, n.Value)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("scanned %d files under %s; want the whole module", files, root)
	}
}
