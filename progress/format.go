package progress

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// human formats bytes with binary units and one decimal: 512 B, 1.5 KiB,
// 40.1 MiB.
func human(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n) / 1024
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		// 1048575 B is 1023.999 KiB: say 1.0 MiB, not 1024.0 KiB.
		if v < 1023.95 || unit == "PiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
		v /= 1024
	}
	panic("unreachable")
}

// seconds formats a duration the way people read one: 3.2s, 4m05s, 1h02m.
func seconds(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d >= time.Minute-50*time.Millisecond:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// perSecond is n bytes over d, in bytes per second; 0 when d is not positive.
func perSecond(n int64, d time.Duration) int64 {
	if d <= 0 || n <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// sanitize replaces control characters (newlines, ESC and the C1 set) with
// spaces: IDs and error texts come from registries and must not move the
// cursor or break a line.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// isHex reports whether s is lower-case hexadecimal.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// splitDigest returns the algorithm and the encoded part of id when id is a
// digest ("sha256:0123…", at least 12 hex digits), else ok is false.
func splitDigest(id string) (algorithm, encoded string, ok bool) {
	algorithm, encoded, found := strings.Cut(id, ":")
	if !found || algorithm == "" || len(encoded) < 12 || !isHex(encoded) {
		return "", "", false
	}
	for i := 0; i < len(algorithm); i++ {
		c := algorithm[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '+' && c != '.' && c != '_' && c != '-' {
			return "", "", false
		}
	}
	return algorithm, encoded, true
}

// truncate cuts the line that starts at buf[start:] to at most cols runes
// and drops its trailing spaces.
func truncate(buf []byte, start, cols int) []byte {
	line := buf[start:]
	n := 0
	for i := range string(line) {
		if n == cols {
			buf = buf[:start+i]
			break
		}
		n++
	}
	for len(buf) > start && buf[len(buf)-1] == ' ' {
		buf = buf[:len(buf)-1]
	}
	return buf
}
