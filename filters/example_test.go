package filters_test

import (
	"fmt"

	"github.com/strata-oci/strata/filters"
)

type image struct {
	Name   string
	Labels map[string]string
}

// Field is the adaptor a store writes for its records.
func (img image) Field(fieldpath []string) (string, bool) {
	switch fieldpath[0] {
	case "name":
		return img.Name, img.Name != ""
	case "labels":
		return filters.LabelField(img.Labels, fieldpath)
	}
	return "", false
}

func ExampleParseAll() {
	images := []image{
		{Name: "docker.io/library/alpine:3.20", Labels: map[string]string{"com.example.team": "infra"}},
		{Name: "docker.io/library/busybox:1", Labels: map[string]string{"env": "dev"}},
		{Name: "ghcr.io/example/app:v2"},
	}
	// Either a docker.io image of team infra, or anything labelled env.
	f, err := filters.ParseAll(`name~=^docker\.io/,labels."com.example.team"==infra`, "labels.env")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, img := range images {
		fmt.Println(img.Name, f.Match(img))
	}

	_, err = filters.Parse("name==")
	fmt.Println(err)
	// Output:
	// docker.io/library/alpine:3.20 true
	// docker.io/library/busybox:1 true
	// ghcr.io/example/app:v2 false
	// filters: parse "name==": expected value at 6
}
