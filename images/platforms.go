package images

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PlatformMatcher picks the platforms a host can run and ranks them.
type PlatformMatcher interface {
	// Match reports whether p can run here.
	Match(p ocispec.Platform) bool
	// Less reports whether a is preferred over b.
	Less(a, b ocispec.Platform) bool
	// String names the platforms matched, for messages.
	String() string
}

// DefaultPlatform returns the platform of the host, normalised: arm gets
// its CPU variant (v7 when it cannot be told), arm64 v8 has no variant.
func DefaultPlatform() ocispec.Platform {
	return normalize(ocispec.Platform{
		OS:           runtime.GOOS,
		Architecture: runtime.GOARCH,
		Variant:      hostVariant(),
	})
}

// hostVariant reads the ARM architecture version from /proc/cpuinfo; other
// architectures have none.
func hostVariant() string {
	if runtime.GOARCH != "arm" && runtime.GOARCH != "arm64" {
		return ""
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		key, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != "CPU architecture" {
			continue
		}
		value = strings.TrimSpace(value)
		// A 64-bit kernel reports "8" (sometimes "AArch64"); a 32-bit
		// process on it runs armv7 code (Go's GOARM tops out at 7).
		if runtime.GOARCH == "arm" {
			switch value {
			case "5", "6", "7":
				return "v" + value
			}
			return "v7"
		}
		if _, err := strconv.Atoi(value); err == nil {
			return "v" + value
		}
		return ""
	}
	return ""
}

// ParsePlatform parses "os/arch[/variant]" or a lone architecture (the
// host's OS) or a lone OS (the host's architecture). Architectures are
// normalised: x86_64 and x86-64 are amd64, aarch64 is arm64, armhf is arm/v7,
// armel is arm/v6, arm64/v8 is arm64. It returns errdefs.ErrInvalidArgument
// naming s when s is not a platform.
func ParsePlatform(s string) (ocispec.Platform, error) {
	bad := func(reason string) (ocispec.Platform, error) {
		return ocispec.Platform{}, fmt.Errorf("parse platform %q: %s: %w", s, reason, errdefs.ErrInvalidArgument)
	}
	parts := strings.Split(s, "/")
	for _, part := range parts {
		if part == "" {
			return bad("empty component")
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
				return bad(fmt.Sprintf("invalid character %q", r))
			}
		}
	}
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		arch, variant := normalizeArch(parts[0], "")
		if knownArch(arch) {
			p = ocispec.Platform{OS: runtime.GOOS, Architecture: arch, Variant: variant}
			break
		}
		osName := normalizeOS(parts[0])
		if !knownOS(osName) {
			return bad("unknown operating system or architecture")
		}
		host := DefaultPlatform()
		p = ocispec.Platform{OS: osName, Architecture: host.Architecture, Variant: host.Variant}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return bad("want os/arch[/variant]")
	}
	p = normalize(p)
	if !knownOS(p.OS) {
		return bad(fmt.Sprintf("unknown operating system %q", p.OS))
	}
	if !knownArch(p.Architecture) {
		return bad(fmt.Sprintf("unknown architecture %q", p.Architecture))
	}
	return p, nil
}

// FormatPlatform writes p as ParsePlatform reads it: "linux/arm/v7",
// "linux/amd64"; an empty OS prints as "unknown".
func FormatPlatform(p ocispec.Platform) string {
	if p.OS == "" {
		return "unknown"
	}
	return path.Join(p.OS, p.Architecture, p.Variant)
}

// Only matches p and what a p host also runs, best first, as containerd's
// platforms.Only does: amd64 runs 386; arm/vN runs arm/vN-1 down to v5;
// arm64 runs arm/v8 down to arm/v5. An exact variant is preferred.
func Only(p ocispec.Platform) PlatformMatcher {
	p = normalize(p)
	return ordered{platforms: compatible(p), name: FormatPlatform(p)}
}

// Any matches any of ps exactly (after normalisation), preferring them in
// the order given.
func Any(ps ...ocispec.Platform) PlatformMatcher {
	o := ordered{platforms: make([]ocispec.Platform, len(ps))}
	names := make([]string, len(ps))
	for i, p := range ps {
		o.platforms[i] = normalize(p)
		names[i] = FormatPlatform(o.platforms[i])
	}
	o.name = strings.Join(names, ", ")
	return o
}

// All matches every platform and prefers none.
func All() PlatformMatcher { return all{} }

type all struct{}

func (all) Match(ocispec.Platform) bool     { return true }
func (all) Less(a, b ocispec.Platform) bool { return false }
func (all) String() string                  { return "all platforms" }

// ordered matches platforms in a preference order.
type ordered struct {
	platforms []ocispec.Platform
	name      string
}

func (o ordered) rank(p ocispec.Platform) (int, bool) {
	p = normalize(p)
	for i, q := range o.platforms {
		if p.OS == q.OS && p.Architecture == q.Architecture && p.Variant == q.Variant {
			return i, true
		}
	}
	return 0, false
}

func (o ordered) Match(p ocispec.Platform) bool {
	_, ok := o.rank(p)
	return ok
}

func (o ordered) Less(a, b ocispec.Platform) bool {
	ra, oka := o.rank(a)
	rb, okb := o.rank(b)
	if !oka {
		return false
	}
	return !okb || ra < rb
}

func (o ordered) String() string { return o.name }

// compatible lists p and the platforms a p host also runs, best first.
func compatible(p ocispec.Platform) []ocispec.Platform {
	out := []ocispec.Platform{p}
	with := func(arch, variant string) ocispec.Platform {
		return ocispec.Platform{OS: p.OS, OSVersion: p.OSVersion, Architecture: arch, Variant: variant}
	}
	switch p.Architecture {
	case "amd64":
		// amd64 micro-architecture levels run the lower ones.
		if v, err := strconv.Atoi(strings.TrimPrefix(p.Variant, "v")); err == nil {
			for v--; v >= 2; v-- {
				out = append(out, with("amd64", "v"+strconv.Itoa(v)))
			}
			if p.Variant != "" {
				out = append(out, with("amd64", ""))
			}
		}
		out = append(out, with("386", ""))
	case "arm":
		if v, err := strconv.Atoi(strings.TrimPrefix(p.Variant, "v")); err == nil {
			for v--; v >= 5; v-- {
				out = append(out, with("arm", "v"+strconv.Itoa(v)))
			}
		}
	case "arm64":
		if p.Variant != "" {
			out = append(out, with("arm64", ""))
		}
		// AArch64 hosts run AArch32 code (containerd's platforms.Only
		// does the same).
		for v := 8; v >= 5; v-- {
			out = append(out, with("arm", "v"+strconv.Itoa(v)))
		}
	}
	return out
}

func normalize(p ocispec.Platform) ocispec.Platform {
	p.OS = normalizeOS(p.OS)
	p.Architecture, p.Variant = normalizeArch(p.Architecture, p.Variant)
	return p
}

func normalizeOS(s string) string {
	s = strings.ToLower(s)
	if s == "macos" {
		return "darwin"
	}
	return s
}

func normalizeArch(arch, variant string) (string, string) {
	arch, variant = strings.ToLower(arch), strings.ToLower(variant)
	switch arch {
	case "i386", "i686":
		return "386", ""
	case "x86_64", "x86-64", "amd64":
		if variant == "v1" {
			variant = ""
		}
		return "amd64", variant
	case "aarch64", "arm64":
		if variant == "8" || variant == "v8" {
			variant = ""
		}
		return "arm64", variant
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			variant = "v7"
		case "5", "6", "8":
			variant = "v" + variant
		}
		return "arm", variant
	}
	return arch, variant
}

// knownOS and knownArch follow Go's list of GOOS and GOARCH values
// (go/build/syslist.go).
func knownOS(s string) bool {
	switch s {
	case "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
		"nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos":
		return true
	}
	return false
}

func knownArch(s string) bool {
	switch s {
	case "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mipsle",
		"mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le", "riscv", "riscv64",
		"s390", "s390x", "sparc", "sparc64", "wasm":
		return true
	}
	return false
}
