package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzResolveUser feeds an image's /etc/passwd and /etc/group of any
// content: resolving never panics, and a user or group it finds by name
// is on a line of the file with those ids.
func FuzzResolveUser(f *testing.F) {
	f.Add("app:x:1000:1000::/home/app:/bin/sh\n", "staff:x:50:app\n", "app")
	f.Add("a:b\n::::\n#c:x:1:1\nd:x:99999999999:1::/:\n", "g:x:1:a,,b\n", "d:g")
	f.Add("root:x:0:0:root:/root:/bin/sh", "root:x:0:", "0:root")
	f.Fuzz(func(t *testing.T, passwd, group, user string) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644)
		os.WriteFile(filepath.Join(root, "etc/group"), []byte(group), 0o644)
		u, _, err := resolveUser(context.Background(), root, user, nil)
		if err != nil {
			return
		}
		name, grp, hasGroup := strings.Cut(user, ":")
		if name != "" && strings.Trim(name, "0123456789") != "" {
			if !strings.Contains("\n"+passwd, fmt.Sprintf("\n%s:", name)) || !strings.Contains(passwd, fmt.Sprintf(":%d:", u.UID)) {
				t.Errorf("user %q resolved to uid %d, which no line of passwd gives:\n%s", name, u.UID, passwd)
			}
		}
		if hasGroup && strings.Trim(grp, "0123456789") != "" {
			if !strings.Contains("\n"+group, fmt.Sprintf("\n%s:", grp)) || !strings.Contains(group, fmt.Sprintf(":%d", u.GID)) {
				t.Errorf("group %q resolved to gid %d, which no line of group gives:\n%s", grp, u.GID, group)
			}
		}
	})
}
