package logs

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/strata-oci/strata/namespaces"
)

// Entry is one line of a json-file log.
type Entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Config is where a container's logger writes and how it rotates.
type Config struct {
	// Dir is the container's log directory (Dir gives it).
	Dir string `json:"dir"`
	// MaxSize is the size in bytes at which json.log is rotated; 0 never
	// rotates.
	MaxSize int64 `json:"max_size,omitempty"`
	// MaxFiles is how many files are kept, json.log included (≥ 1).
	MaxFiles int `json:"max_files,omitempty"`
}

// Defaults: docker's json-file keeps everything unless told; strata bounds
// a container's logs to 3 × 10 MiB unless told otherwise (the
// [container_logs] section of stratad's configuration, then --log-opt).
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 3
)

// Limits are the rotation limits a container's log gets unless its
// --log-opt says otherwise: what stratad's [container_logs] section sets,
// which the daemon reports in jobs.Info and the CLI's embedded mode reads
// from the same file.
type Limits struct {
	// MaxSize is the size in bytes at which json.log is rotated; 0 never
	// rotates.
	MaxSize int64 `json:"max_size"`
	// MaxFiles is how many files are kept, json.log included (≥ 1).
	MaxFiles int `json:"max_files"`
}

// DefaultLimits are DefaultMaxSize and DefaultMaxFiles.
func DefaultLimits() Limits { return Limits{MaxSize: DefaultMaxSize, MaxFiles: DefaultMaxFiles} }

// Config returns the logger configuration of a container logging into
// dir with these limits, before its --log-opt (ParseOpts).
func (l Limits) Config(dir string) Config {
	return Config{Dir: dir, MaxSize: l.MaxSize, MaxFiles: l.MaxFiles}
}

// SectionName is the name of Section in stratad's configuration file.
const SectionName = "container_logs"

// Section is the [container_logs] section of stratad's configuration file
// (/etc/strata/config.toml), as written: sizes as --log-opt takes them.
// It is not [logs]: [log] is already the daemon's own logging.
type Section struct {
	MaxSize string `toml:"max_size" comment:"default --log-opt max-size of the containers strata runs: json.log is rotated at this size (bytes, or a number with k, m or g; 0 never rotates)"`
	MaxFile int    `toml:"max_file" comment:"default --log-opt max-file: how many log files a container keeps, json.log included (at least 1)"`
}

// DefaultSection is the section of DefaultLimits.
func DefaultSection() Section { return Section{MaxSize: "10m", MaxFile: DefaultMaxFiles} }

// Limits checks the section: a bad value is errdefs.ErrInvalidArgument
// naming its key (container_logs.max_size) and what it wants.
func (s Section) Limits() (Limits, error) {
	n, err := parseSize(s.MaxSize)
	if err != nil {
		return Limits{}, fmt.Errorf("%s.max_size: %w", SectionName, err)
	}
	if s.MaxFile < 1 {
		return Limits{}, fmt.Errorf("%s.max_file %d: want a count ≥ 1: %w", SectionName, s.MaxFile, errdefs.ErrInvalidArgument)
	}
	return Limits{MaxSize: n, MaxFiles: s.MaxFile}, nil
}

const (
	currentName = "json.log"
	doneName    = "done"
	// maxLine is docker's: longer lines are split into pieces this long.
	maxLine = 16 << 10
)

// Dir returns the log directory of a container under the store root.
func Dir(root, namespace, id string) (string, error) {
	if err := namespaces.Validate(namespace); err != nil {
		return "", err
	}
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("logs: container ID %q: %w", id, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(root, "logs", namespace, id), nil
}

// ParseOpts reads docker's --log-opt max-size=10m and max-file=3 over
// cfg's limits (Limits.Config; sizes in bytes or with k, m, g); a cfg
// without MaxFiles gets DefaultMaxFiles.
func ParseOpts(cfg Config, opts []string) (Config, error) {
	if cfg.MaxFiles == 0 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return cfg, fmt.Errorf("log option %q: want KEY=VALUE: %w", o, errdefs.ErrInvalidArgument)
		}
		switch k {
		case "max-size":
			n, err := parseSize(v)
			if err != nil {
				return cfg, fmt.Errorf("log option %q: %w", o, err)
			}
			cfg.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return cfg, fmt.Errorf("log option %q: want a count ≥ 1: %w", o, errdefs.ErrInvalidArgument)
			}
			cfg.MaxFiles = n
		default:
			return cfg, fmt.Errorf("log option %q: unknown (want max-size, max-file): %w", k, errdefs.ErrInvalidArgument)
		}
	}
	return cfg, nil
}

func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("size %q: want bytes, or a number with k, m or g: %w", s, errdefs.ErrInvalidArgument)
	}
	mult := int64(1)
	switch strings.ToLower(s[len(s)-min(len(s), 1):]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	num := s
	if mult != 1 {
		num = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want bytes, or a number with k, m or g: %w", s, errdefs.ErrInvalidArgument)
	}
	return n * mult, nil
}

// URI returns the stdio URI (for both stdout and stderr of the task's
// Create request) that makes the shim run binary (the strata executable)
// as the container's logger with cfg.
func URI(binary string, cfg Config) (string, error) {
	if !filepath.IsAbs(binary) || !filepath.IsAbs(cfg.Dir) {
		return "", fmt.Errorf("logs: logger %q and directory %q must be absolute: %w", binary, cfg.Dir, errdefs.ErrInvalidArgument)
	}
	if cfg.MaxFiles < 1 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	// One query key: the shim passes each key and value as arguments in
	// map order, so a single one gives `binary logger <config>`.
	u := url.URL{Scheme: "binary", Path: filepath.Clean(binary), RawQuery: url.Values{"logger": {string(b)}}.Encode()}
	return u.String(), nil
}

// ParseConfig reads the argument URI's config arrives as.
func ParseConfig(arg string) (Config, error) {
	var cfg Config
	if err := json.Unmarshal([]byte(arg), &cfg); err != nil {
		return cfg, fmt.Errorf("logs: logger config %q: %w: %w", arg, err, errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(cfg.Dir) || cfg.MaxSize < 0 || cfg.MaxFiles < 1 {
		return cfg, fmt.Errorf("logs: logger config %q: want an absolute dir, max size ≥ 0, max files ≥ 1: %w", arg, errdefs.ErrInvalidArgument)
	}
	return cfg, nil
}
