package content

import (
	"strconv"

	"github.com/strata-oci/strata/filters"
)

// AdaptInfo exposes a blob's fields to filters: digest, size, labels.<key>.
func AdaptInfo(info Info) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 0 {
			return "", false
		}
		switch fieldpath[0] {
		case "digest":
			return info.Digest.String(), true
		case "size":
			return strconv.FormatInt(info.Size, 10), true
		case "labels":
			return filters.LabelField(info.Labels, fieldpath)
		}
		return "", false
	})
}

// AdaptStatus exposes an ingest's fields to filters: ref.
func AdaptStatus(st Status) filters.Adaptor {
	return filters.AdapterFunc(func(fieldpath []string) (string, bool) {
		if len(fieldpath) == 1 && fieldpath[0] == "ref" {
			return st.Ref, true
		}
		return "", false
	})
}
