package images

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func plat(s string) ocispec.Platform {
	parts := strings.Split(s, "/")
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return p
}

func TestParsePlatform(t *testing.T) {
	host := DefaultPlatform()
	for _, tc := range []struct {
		name string
		in   string
		want ocispec.Platform
	}{
		{"os-arch", "linux/amd64", plat("linux/amd64")},
		{"arm64-v8", "linux/arm64/v8", plat("linux/arm64")},
		{"arm64-8", "linux/arm64/8", plat("linux/arm64")},
		{"arm64-v9", "linux/arm64/v9", plat("linux/arm64/v9")},
		{"arm-v7", "linux/arm/v7", plat("linux/arm/v7")},
		{"arm-default-v7", "linux/arm", plat("linux/arm/v7")},
		{"arm-6", "linux/arm/6", plat("linux/arm/v6")},
		{"armhf", "linux/armhf", plat("linux/arm/v7")},
		{"armel", "linux/armel", plat("linux/arm/v6")},
		{"x86_64", "linux/x86_64", plat("linux/amd64")},
		{"x86-64", "linux/x86-64", plat("linux/amd64")},
		{"amd64-v1", "linux/amd64/v1", plat("linux/amd64")},
		{"amd64-v3", "linux/amd64/v3", plat("linux/amd64/v3")},
		{"aarch64", "linux/aarch64", plat("linux/arm64")},
		{"i386", "linux/i386", plat("linux/386")},
		{"upper-case", "Linux/AMD64", plat("linux/amd64")},
		{"windows", "windows/amd64", plat("windows/amd64")},
		{"macos", "macos/arm64", plat("darwin/arm64")},
		{"arch-only", "amd64", ocispec.Platform{OS: runtime.GOOS, Architecture: "amd64"}},
		{"alias-only", "aarch64", ocispec.Platform{OS: runtime.GOOS, Architecture: "arm64"}},
		{"armhf-only", "armhf", ocispec.Platform{OS: runtime.GOOS, Architecture: "arm", Variant: "v7"}},
		{"os-only", "linux", ocispec.Platform{OS: "linux", Architecture: host.Architecture, Variant: host.Variant}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePlatform(tc.in)
			if err != nil {
				t.Fatalf("ParsePlatform(%q) error: %v", tc.in, err)
			}
			if !samePlatform(got, tc.want) {
				t.Fatalf("ParsePlatform(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			// What it parsed writes back to the same platform.
			again, err := ParsePlatform(FormatPlatform(got))
			if err != nil || !samePlatform(again, got) {
				t.Fatalf("ParsePlatform(FormatPlatform(%+v)) = %+v, %v", got, again, err)
			}
		})
	}
	for _, in := range []string{"", "linux/", "/amd64", "linux//v7", "linux/amd64/v7/x", "plan10", "linux/foo", "foo/amd64", "linux/amd 64", "linux/amd64\n"} {
		t.Run("bad-"+in, func(t *testing.T) {
			_, err := ParsePlatform(in)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParsePlatform(%q) error = %v, want invalid argument", in, err)
			}
			if !strings.Contains(err.Error(), strings.TrimSpace(in)) || !strings.Contains(err.Error(), "platform") {
				t.Fatalf("ParsePlatform(%q) error %q does not name the input", in, err)
			}
		})
	}
}

func samePlatform(a, b ocispec.Platform) bool {
	return a.OS == b.OS && a.Architecture == b.Architecture && a.Variant == b.Variant && a.OSVersion == b.OSVersion
}

func TestFormatPlatform(t *testing.T) {
	for _, tc := range []struct {
		in   ocispec.Platform
		want string
	}{
		{plat("linux/arm/v7"), "linux/arm/v7"},
		{plat("linux/amd64"), "linux/amd64"},
		{ocispec.Platform{}, "unknown"},
	} {
		if got := FormatPlatform(tc.in); got != tc.want {
			t.Errorf("FormatPlatform(%+v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDefaultPlatform(t *testing.T) {
	p := DefaultPlatform()
	if p.OS != runtime.GOOS {
		t.Fatalf("DefaultPlatform().OS = %q, want %q", p.OS, runtime.GOOS)
	}
	switch runtime.GOARCH {
	case "arm64":
		if p.Variant == "v8" {
			t.Fatalf("DefaultPlatform() = %+v: arm64 v8 is not normalised", p)
		}
	case "arm":
		if p.Variant == "" {
			t.Fatalf("DefaultPlatform() = %+v: arm without variant", p)
		}
	case "amd64":
		if runtime.GOOS == "linux" && !samePlatform(p, plat("linux/amd64")) {
			t.Fatalf("DefaultPlatform() = %+v, want linux/amd64", p)
		}
	}
	if !Only(p).Match(p) {
		t.Fatalf("Only(DefaultPlatform()) does not match %+v", p)
	}
}

// candidates is what the matcher tables choose from, in an order that
// sorting has to change.
var candidates = []string{
	"linux/386", "linux/arm/v5", "linux/arm/v6", "linux/arm", "linux/arm/v8", "linux/arm64/v8",
	"linux/amd64/v2", "linux/amd64/v3", "linux/amd64/v4", "linux/amd64", "linux/s390x", "windows/amd64",
	"linux/arm64", "linux/arm64/v9",
}

func TestMatchers(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    PlatformMatcher
		// want: the candidates that match, best first; ties keep the
		// candidates' order.
		want   []string
		string string
	}{
		{"only-amd64", Only(plat("linux/amd64")), []string{"linux/amd64", "linux/386"}, "linux/amd64"},
		{"only-amd64-v3", Only(plat("linux/amd64/v3")),
			[]string{"linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"}, "linux/amd64/v3"},
		{"only-arm64", Only(plat("linux/arm64/v8")),
			[]string{"linux/arm64/v8", "linux/arm64", "linux/arm/v8", "linux/arm", "linux/arm/v6", "linux/arm/v5"}, "linux/arm64"},
		{"only-arm64-v9", Only(plat("linux/arm64/v9")),
			[]string{"linux/arm64/v9", "linux/arm64/v8", "linux/arm64", "linux/arm/v8", "linux/arm", "linux/arm/v6", "linux/arm/v5"}, "linux/arm64/v9"},
		{"only-arm-v7", Only(plat("linux/arm/v7")), []string{"linux/arm", "linux/arm/v6", "linux/arm/v5"}, "linux/arm/v7"},
		{"only-arm-v6", Only(plat("linux/arm/v6")), []string{"linux/arm/v6", "linux/arm/v5"}, "linux/arm/v6"},
		{"only-s390x", Only(plat("linux/s390x")), []string{"linux/s390x"}, "linux/s390x"},
		{"only-windows", Only(plat("windows/amd64")), []string{"windows/amd64"}, "windows/amd64"},
		{"any-in-order", Any(plat("linux/s390x"), plat("linux/arm64"), plat("linux/amd64")),
			[]string{"linux/s390x", "linux/arm64/v8", "linux/arm64", "linux/amd64"}, "linux/s390x, linux/arm64, linux/amd64"},
		{"any-exact-only", Any(plat("linux/arm/v7")), []string{"linux/arm"}, "linux/arm/v7"},
		{"all", All(), candidates, "all platforms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []ocispec.Platform
			for _, c := range candidates {
				if tc.m.Match(plat(c)) {
					got = append(got, plat(c))
				}
			}
			slices.SortStableFunc(got, func(a, b ocispec.Platform) int {
				switch {
				case tc.m.Less(a, b):
					return -1
				case tc.m.Less(b, a):
					return 1
				}
				return 0
			})
			var names []string
			for _, p := range got {
				names = append(names, FormatPlatform(p))
			}
			if !slices.Equal(names, tc.want) {
				t.Fatalf("%s matches %v, want %v", tc.m, names, tc.want)
			}
			if tc.m.String() != tc.string {
				t.Fatalf("String() = %q, want %q", tc.m.String(), tc.string)
			}
		})
	}
}

// FuzzParsePlatform: whatever ParsePlatform accepts, FormatPlatform writes
// back to a string that parses to the same platform; refusals are
// invalid-argument errors that name the input.
func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm64/v8", "armhf", "linux", "windows/amd64", "Linux/X86_64", "linux/arm/v5", "/", "linux/arm/v7/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePlatform(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("ParsePlatform(%q) error %q: want invalid argument naming the input", s, err)
			}
			return
		}
		again, err := ParsePlatform(FormatPlatform(p))
		if err != nil || !samePlatform(again, p) {
			t.Fatalf("ParsePlatform(FormatPlatform(ParsePlatform(%q))) = %+v, %v; want %+v", s, again, err, p)
		}
		if !Only(p).Match(p) {
			t.Fatalf("Only(%+v) does not match itself", p)
		}
	})
}
